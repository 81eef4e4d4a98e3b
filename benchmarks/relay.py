"""The relay benchmark: Cascade against nginx-rtmp and a raw FFmpeg tee, doing the same job.

Run it as ``python -m benchmarks.relay [--targets 1,3,10] [--seconds 21] [--json out.json]``.

For each target count N, the same pre-encoded 1080p30 ~6 Mbit/s clip is published in real
time to three relays in turn, each sending to the same N streams of one nginx-rtmp sink:

- ``nginx``: nginx with the RTMP module, ``push`` once per target;
- ``tee``: ``ffmpeg -listen 1 -i rtmp://… -c copy -f tee "[f=flv:onfail=ignore]…|…"``;
- ``cascade``: the real relay (ingest + source hub + a passthrough group of N targets) in a
  process of its own (:mod:`benchmarks.cascade_runner`).

Then a re-encode group against the same encode run alone, the time a re-enabled target
waits for its first keyframe, and the time the ingest needs to listen again. How each figure
is measured, and why that is fair, is in ``benchmarks/README.md`` and in the JSON's ``meta``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import imageio_ffmpeg
import psutil

from benchmarks.cascade_runner import RunnerConfig, ToggleProbe, build_group
from benchmarks.peers import (
    INGEST_KEY,
    SINK_APP,
    Nginx,
    encode_alone_argv,
    ffmpeg_version,
    find_nginx,
    make_clip,
    nginx_argv,
    publisher_argv,
    read_sink_stat,
    target_names,
    tee_argv,
    write_peer_conf,
    write_sink_conf,
)
from benchmarks.procs import (
    MB,
    BenchmarkError,
    Child,
    Children,
    MemoryFigures,
    TreeSampler,
    free_port,
    is_listening,
    tree_cpu_s,
)
from benchmarks.report import Report

ROOT = Path(__file__).resolve().parents[1]
RELAYS = ("nginx", "tee", "cascade")
SAMPLE_PERIOD = 0.5  # seconds between memory samples
LIVE_AFTER = 1.0  # memory "while live": from this long after the publisher starts to its end


@dataclass
class RunResult:
    """One relay relaying the clip once to ``targets`` sink streams."""

    relay: str
    targets: int
    cpu_s: float  # after the relay was ready (listening): the relaying itself
    cpu_total_s: float  # from its start to its exit, interpreter/binary start-up included
    cpu_startup_s: float
    user_s: float
    sys_s: float
    wall_s: float
    memory: MemoryFigures
    delivered_mb: float  # what the sink received in all, every target together
    delivered_min_target_mb: float  # the least any one target delivered (sampled, approx.)
    first_bytes_s: float | None  # publish start → the first target's stream on the sink
    cpu_breakdown_approx: dict[str, float]
    runner: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SinkWatcher:
    """Polls the sink's ``/stat`` in a thread: bytes per stream and when each stream appeared."""

    stat_port: int
    period: float = SAMPLE_PERIOD
    max_bytes: dict[str, int] = field(default_factory=dict)
    appearances: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _present: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sink-stat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                stat = read_sink_stat(self.stat_port)
            except Exception as exc:  # the sink is ours; a failed poll is only a gap
                self.errors.append(repr(exc))
                self._stop.wait(self.period)
                continue
            now = time.monotonic()
            seen = {name for name, nbytes in stat.streams.items() if nbytes > 0}
            for name in seen - self._present:
                self.appearances.setdefault(name, []).append(now)
            self._present = seen
            for name, nbytes in stat.streams.items():
                self.max_bytes[name] = max(self.max_bytes.get(name, 0), nbytes)
            self._stop.wait(self.period)


def _labeller(relay: str) -> Callable[[psutil.Process], str]:
    """Names processes for the CPU breakdown: ``ingest``, ``targets``, ``encoder``, ``worker``…"""

    def label(proc: psutil.Process) -> str:
        try:
            cmd = proc.cmdline()
        except psutil.Error:
            return "?"
        text = " ".join(cmd)
        if "cascade_runner" in text:
            return "python"
        if "nginx: worker" in text:
            return "nginx-worker"
        if "nginx: master" in text:
            return "nginx-master"
        if "-rtmp_playpath" in cmd:
            return "targets"
        if "-listen" in cmd:
            return "ingest" if relay == "cascade" else relay
        if "-c:v" in cmd:
            return "encoder"
        return relay

    return label


class Bench:
    """Owns the sink, the clip and every run; all children go through ``children``."""

    def __init__(
        self,
        *,
        ffmpeg: str,
        nginx: Nginx,
        clip: Path,
        seconds: float,
        run_dir: Path,
        children: Children,
        progress: Callable[[str], None],
    ) -> None:
        self.ffmpeg = ffmpeg
        self.nginx = nginx
        self.clip = clip
        self.seconds = seconds
        self.run_dir = run_dir
        self.children = children
        self.progress = progress
        self.sink_port = free_port()
        self.stat_port = free_port()
        self._runs = 0

    # -- the sink ---------------------------------------------------------------------------

    def start_sink(self) -> None:
        prefix = self.run_dir / "sink"
        write_sink_conf(self.nginx, prefix, self.sink_port, self.stat_port)
        sink = self.children.start(
            "sink-nginx",
            nginx_argv(self.nginx, prefix),
            stop_signal=signal.SIGQUIT,
            death_signal=signal.SIGTERM,
        )
        self._wait_listening(sink, self.sink_port)
        self._wait_listening(sink, self.stat_port)

    def sink_url(self) -> str:
        return f"rtmp://127.0.0.1:{self.sink_port}/{SINK_APP}"

    def _sink_quiet(self, names: Sequence[str], timeout: float = 5.0) -> None:
        """Wait until none of ``names`` is publishing to the sink any more."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not set(names) & set(read_sink_stat(self.stat_port).streams):
                return
            time.sleep(0.05)

    # -- one run ----------------------------------------------------------------------------

    def run(self, relay: str, count: int, *, reencode: bool = False) -> RunResult:
        """Relay the clip once through ``relay`` to ``count`` targets and measure it."""
        self._runs += 1
        tag = f"{self._runs:02d}-{relay}-{count}"
        self.progress(f"  {relay:<8} {count:>2} target(s){' (re-encode)' if reencode else ''}")
        names = target_names(count)
        port = free_port()
        self._sink_quiet(names)
        config: RunnerConfig | None = None
        if relay == "nginx":
            prefix = self.run_dir / tag
            write_peer_conf(self.nginx, prefix, port, self.sink_port, count)
            child = self.children.start(
                tag,
                nginx_argv(self.nginx, prefix),
                stop_signal=signal.SIGQUIT,
                death_signal=signal.SIGTERM,
            )
        elif relay == "tee":
            child = self.children.start(tag, tee_argv(self.ffmpeg, port, self.sink_port, count))
        elif relay == "cascade":
            config = self._runner_config(port, names, reencode=reencode)
            child = self._start_runner(tag, config)
        elif relay == "encode":
            group = build_group(self._runner_config(port, names, reencode=True))
            argv = encode_alone_argv(self.ffmpeg, group, self.clip, self.sink_port)
            child = self.children.start(tag, argv)
        else:
            raise ValueError(f"unknown relay {relay!r}")

        if relay != "encode":
            self._wait_listening(child, port)
        startup = tree_cpu_s(child.pid)
        sampler = TreeSampler(child.pid, period=SAMPLE_PERIOD, label=_labeller(relay))
        watcher = SinkWatcher(self.stat_port, period=0.1)
        bytes_before = read_sink_stat(self.stat_port).bytes_in
        sampler.start()
        watcher.start()
        try:
            live_from = time.monotonic()
            if relay == "encode":
                self._reap(child, self.seconds + 60)
            else:
                publisher = self.children.start(
                    f"{tag}-publisher", publisher_argv(self.ffmpeg, self.clip, port)
                )
                self._reap(publisher, self.seconds + 60)
            live_to = time.monotonic()
            self._finish(relay, child, names)
        finally:
            sampler.stop()
            watcher.stop()
        bytes_after = read_sink_stat(self.stat_port).bytes_in
        runner = self._runner_report(child) if relay == "cascade" else None

        missing = [name for name in names if not watcher.appearances.get(name)]
        if missing:
            raise BenchmarkError(
                f"{relay} delivered nothing to {', '.join(missing)} "
                f"(logs in {self.run_dir}):\n{child.log_tail()}"
            )
        assert child.rusage is not None
        live = [s for s in sampler.samples if live_from + LIVE_AFTER <= s.at <= live_to]
        return RunResult(
            relay=relay,
            targets=count,
            cpu_s=round(child.cpu_s - startup, 3),
            cpu_total_s=round(child.cpu_s, 3),
            cpu_startup_s=round(startup, 3),
            user_s=round(child.rusage.ru_utime, 3),
            sys_s=round(child.rusage.ru_stime, 3),
            wall_s=round(live_to - live_from, 2),
            memory=MemoryFigures.from_samples(live or sampler.samples),
            delivered_mb=round((bytes_after - bytes_before) / MB, 2),
            delivered_min_target_mb=round(min(watcher.max_bytes[n] for n in names) / MB, 2),
            first_bytes_s=round(min(watcher.appearances[n][0] for n in names) - live_from, 2),
            cpu_breakdown_approx=sampler.cpu_breakdown(),
            runner=runner,
        )

    def _finish(self, relay: str, child: Child, names: Sequence[str]) -> None:
        """Let the relay end its outputs by itself; nginx is asked to quit gracefully."""
        if relay == "nginx":
            # Its pushes end with the publisher; then SIGQUIT lets the master reap its worker,
            # so the worker's CPU is in the master's rusage.
            self._sink_quiet(names)
            child.signal(signal.SIGQUIT)
        self._reap(child, 30.0)
        if child.returncode != 0 and relay != "nginx":
            raise BenchmarkError(
                f"{child.name} exited with {child.returncode} (logs in {self.run_dir}):\n"
                f"{child.log_tail()}"
            )

    # -- Cascade ----------------------------------------------------------------------------

    def _runner_config(
        self,
        port: int,
        names: list[str],
        *,
        reencode: bool = False,
        sessions: int = 1,
        toggle: ToggleProbe | None = None,
    ) -> RunnerConfig:
        return RunnerConfig(
            ffmpeg=self.ffmpeg,
            ingest_port=port,
            ingest_key=INGEST_KEY,
            sink_url=self.sink_url(),
            targets=names,
            reencode=reencode,
            sessions=sessions,
            toggle=toggle,
        )

    def _start_runner(self, tag: str, config: RunnerConfig) -> Child:
        path = self.run_dir / f"{tag}.json"
        config.dump(path)
        argv = [sys.executable, "-m", "benchmarks.cascade_runner", str(path)]
        return self.children.start(tag, argv, stdout=subprocess.PIPE, cwd=ROOT)

    def _runner_report(self, child: Child) -> dict[str, Any]:
        assert child.popen.stdout is not None
        lines = child.popen.stdout.read().decode(errors="replace").splitlines()
        for line in reversed(lines):
            if line.startswith("{"):
                report: dict[str, Any] = json.loads(line)
                return report
        raise BenchmarkError(f"{child.name} printed no report:\n{child.log_tail()}")

    def probe(self, count: int = 3) -> dict[str, Any]:
        """Toggle one target while live, then time the ingest's re-listen after 3 publishes.

        The runner disables ``t2`` a few seconds into the first publish, enables it again
        and reports when the hub handed it its first keyframe; the sink's ``/stat``
        (polled every 20 ms) tells when it received bytes again. After each publish ends,
        ``/proc/net/tcp`` is read every 2 ms until the ingest port listens again.
        """
        self._runs += 1
        tag = f"{self._runs:02d}-cascade-probe"
        names = target_names(count)
        toggled = names[1] if count > 1 else names[0]
        first = min(self.seconds, 8.0)
        publishes = [first, min(first, 1.5), min(first, 1.5)]
        probe = ToggleProbe(toggled, disable_at=min(3.0, 0.3 * first), gap=min(1.0, 0.2 * first))
        self.progress(f"  cascade  {count:>2} target(s): toggle {toggled}, re-listen x3")
        port = free_port()
        self._sink_quiet(names)
        config = self._runner_config(port, names, sessions=len(publishes), toggle=probe)
        child = self._start_runner(tag, config)
        self._wait_listening(child, port)
        watcher = SinkWatcher(self.stat_port, period=0.02)
        sampler = TreeSampler(child.pid, period=SAMPLE_PERIOD, label=_labeller("cascade"))
        relisten: list[float] = []
        windows: list[tuple[float, float]] = []  # each publish: started, publisher reaped
        idle_rss = psutil.Process(child.pid).memory_info().rss / MB
        watcher.start()
        sampler.start()
        try:
            for i, seconds in enumerate(publishes):
                self._wait_listening(child, port)
                began = time.monotonic()
                publisher = self.children.start(
                    f"{tag}-publisher-{i + 1}",
                    publisher_argv(self.ffmpeg, self.clip, port, seconds=seconds),
                )
                self._reap(publisher, seconds + 60, poll=0.002)
                assert publisher.exited_at is not None
                windows.append((began, publisher.exited_at))
                listening_at = self._wait_listening(child, port, poll=0.002)
                relisten.append(round(listening_at - publisher.exited_at, 4))
            self._reap(child, 30.0)
        finally:
            watcher.stop()
            sampler.stop()
        report = self._runner_report(child)
        if child.returncode != 0 or not report.get("ok"):
            raise BenchmarkError(f"the probe run failed:\n{child.log_tail()}")
        toggle = report.get("toggle") or {}
        enabled = toggle.get("enable_called_at")
        if enabled is None:
            raise BenchmarkError(f"the probe run did not toggle {toggled}:\n{child.log_tail()}")
        began, ended = windows[0]
        back = [t for t in watcher.appearances.get(toggled, []) if t >= enabled]
        others = [n for n in names if n != toggled]
        # During the toggled publish every other target starts once and is never restarted,
        # and its stream appears on the sink once (a reconnect would show as a second time).
        starts_first = report["starts_first_session"]
        reconnects = sum(starts_first.get(f"target:{n}", 0) - 1 for n in others)
        appeared = {
            n: len([t for t in watcher.appearances.get(n, []) if began <= t <= ended + 1.0])
            for n in others
        }
        first_seen = [watcher.appearances[n][0] for n in names if watcher.appearances.get(n)]
        return {
            "targets": len(names),
            "toggled": toggled,
            "first_keyframe_s": toggle.get("first_keyframe_s"),
            "enable_call_s": toggle.get("enable_returned_s"),
            "sink_bytes_after_s": round(back[0] - enabled, 4) if back else None,
            "other_targets_reconnects": reconnects,
            "other_targets_sink_appearances": appeared,
            "other_targets_sink_reappearances": sum(max(0, k - 1) for k in appeared.values()),
            "other_targets_tags_dropped": sum(report["targets"][n]["tags_dropped"] for n in others),
            "publish_to_first_sink_bytes_s": round(min(first_seen) - began, 3)
            if first_seen
            else None,
            "relisten_s": relisten,
            "relisten_max_s": max(relisten),
            "python_rss_idle_mb": round(idle_rss, 1),
            "memory": asdict(MemoryFigures.from_samples(sampler.samples)),
            "sink_poll_errors": len(watcher.errors),
            "runner": report,
        }

    # -- helpers ----------------------------------------------------------------------------

    def _wait_listening(
        self, child: Child, port: int, timeout: float = 15.0, poll: float = 0.01
    ) -> float:
        """Wait until ``port`` listens; the time it was first seen doing so."""
        deadline = time.monotonic() + timeout
        while not is_listening(port):
            if not child.running or child.reap(0):
                raise BenchmarkError(
                    f"{child.name} exited ({child.returncode}) before listening on {port}:\n"
                    f"{child.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise BenchmarkError(f"{child.name}: nothing listens on port {port}")
            time.sleep(poll)
        return time.monotonic()

    def _reap(self, child: Child, timeout: float, poll: float = 0.005) -> None:
        if not child.reap(timeout, poll=poll):
            raise BenchmarkError(
                f"{child.name} did not finish within {timeout:.0f} s:\n{child.log_tail()}"
            )


# --- the whole benchmark ------------------------------------------------------------------------


def parse_targets(text: str) -> list[int]:
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError("target counts are whole numbers from 1 up")
    return counts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.relay",
        description="Cascade's relay against nginx-rtmp and a raw FFmpeg tee, same clip, "
        "same targets; prints a table of figures and budgets.",
    )
    parser.add_argument(
        "--targets", type=parse_targets, default=[1, 3, 10], help="target counts (1,3,10)"
    )
    parser.add_argument("--seconds", type=float, default=21.0, help="clip length (21)")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "cascade-bench-cache",
        help="where the clip is made once and kept",
    )
    parser.add_argument("--ffmpeg", help="FFmpeg for every relay (default: the bundled one)")
    parser.add_argument("--skip-reencode", action="store_true", help="skip the re-encode runs")
    parser.add_argument("--skip-probe", action="store_true", help="skip toggle and re-listen")
    parser.add_argument("--keep", action="store_true", help="keep configs and logs")
    parser.add_argument("--strict", action="store_true", help="exit with 3 when a budget is missed")
    return parser


def run_all(args: argparse.Namespace, bench: Bench, report: Report) -> None:
    for count in args.targets:
        bench.progress(f"passthrough, {count} target(s)")
        for relay in RELAYS:
            report.passthrough.setdefault(count, {})[relay] = bench.run(relay, count)
    if not args.skip_reencode:
        bench.progress("re-encode, 1 target")
        for relay in ("tee", "cascade"):
            if relay not in report.passthrough.get(1, {}):
                report.passthrough.setdefault(1, {})[relay] = bench.run(relay, 1)
        report.reencode["cascade"] = bench.run("cascade", 1, reencode=True)
        report.reencode["encode"] = bench.run("encode", 1)
    if not args.skip_probe:
        bench.progress("toggle and re-listen")
        report.probe = bench.probe(3)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # even where a shell started us with it ignored
    ffmpeg = args.ffmpeg or imageio_ffmpeg.get_ffmpeg_exe()

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        nginx = find_nginx()
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run_dir = Path(tempfile.mkdtemp(prefix="cascade-bench-"))
    failed = True
    started = time.monotonic()
    try:
        progress(f"clip: {args.seconds:g} s 1080p30 in {args.cache_dir}")
        clip = make_clip(ffmpeg, args.seconds, args.cache_dir)
        report = Report(
            meta={
                "seconds": args.seconds,
                "targets": args.targets,
                "clip": str(clip),
                "clip_mbit_s": round(clip.stat().st_size * 8 / args.seconds / 1e6, 2),
                "ffmpeg": ffmpeg,
                "ffmpeg_version": ffmpeg_version(ffmpeg),
                "nginx_version": nginx.version(),
                "nginx_rtmp_module": nginx.module,
                "cpus": os.cpu_count(),
                "machine": platform.platform(),
                "python": platform.python_version(),
            }
        )
        with Children(run_dir) as children:
            bench = Bench(
                ffmpeg=ffmpeg,
                nginx=nginx,
                clip=clip,
                seconds=args.seconds,
                run_dir=run_dir,
                children=children,
                progress=progress,
            )
            bench.start_sink()
            run_all(args, bench, report)
        report.meta["elapsed_s"] = round(time.monotonic() - started, 1)
        print(report.table())
        if args.json is not None:
            args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        failed = False
        return 3 if args.strict and not report.all_pass() else 0
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; every process was stopped", file=sys.stderr)
        return 130
    finally:
        if failed or args.keep:
            print(f"configs and logs: {run_dir}", file=sys.stderr)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
