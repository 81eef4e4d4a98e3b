"""The reliability soak: 20 targets in 4 groups live on a real agent for N minutes.

    python scripts/soak.py --minutes 60 [--json FILE] [--keep DIR]

Runs the load scenario of the reliability suite (:mod:`tests.reliability.load`) for
``--minutes`` — ``cascade run --headless`` with three passthrough groups and one re-encode
group of five targets each, all sending to one nginx-rtmp server, a publisher looping a small
clip, and every two minutes a storm of 200 WebSocket subscribers and 100 toggles of one
target — while the agent's RSS, open files, threads and children are sampled every second.
One target per group (and the toggled one) is recorded and read with ffprobe at the end.

It prints the figures and each bound it missed, writes every figure (and every sample) as
JSON to ``--json`` (default: ``cascade-soak.json`` in the temporary folder, where
``benchmarks/reliability_report.py`` looks for it), and exits 1 if a bound was missed.

Needs nginx with its RTMP module and Debian's ffprobe (``.ci/run`` installs both).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_JSON = Path(tempfile.gettempdir()) / "cascade-soak.json"


def main(argv: list[str] | None = None) -> int:
    import imageio_ffmpeg

    from tests.reliability.conftest import make_small_clip
    from tests.reliability.load import LoadPlan, check, run_load
    from tests.reliability.test_load import summary

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the window")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where the figures go")
    parser.add_argument("--storm-every", type=float, default=120.0, metavar="SECONDS")
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--toggles", type=int, default=100)
    parser.add_argument("--keep", type=Path, help="run in DIR and keep it (logs, recordings)")
    args = parser.parse_args(argv)

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="cascade-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    plan = LoadPlan(
        seconds=args.minutes * 60,
        storm_every_s=args.storm_every,
        subscribers=args.subscribers,
        toggles=args.toggles,
        record="some",
    )
    began = time.monotonic()
    try:
        clip = make_small_clip(ffmpeg, folder / "small.flv")

        def say(line: str) -> None:
            print(f"[{time.monotonic() - began:7.1f} s] {line}", file=sys.stderr, flush=True)

        figures = asyncio.run(run_load(plan, folder / "run", ffmpeg, clip, progress=say))
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    data = figures.to_json()
    data["summary"] = summary(figures)
    data["missed"] = missed = check(figures)
    data["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    args.json.write_text(json.dumps(data, indent=1))
    print(json.dumps(data["summary"], indent=1))
    for line in missed:
        print(f"MISSED: {line}")
    print(f"{'held' if not missed else 'FAILED'}; figures in {args.json}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
