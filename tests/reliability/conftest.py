"""Fixtures of the reliability suite, and the record each case leaves for the report.

Every case asks for ``record`` and says what it is (``record.case(area, name)``) and what it
saw (``record.evidence(...)``: bytes and timestamps that arrived, recovery times, error
messages). When ``CASCADE_RELIABILITY_RESULTS`` names a file, each case appends one JSON line
to it at teardown — area, case, outcome (``passed``/``failed``), evidence, test id and
duration — and ``benchmarks/reliability_report.py`` turns those lines into its table. Without
the variable nothing is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

RESULTS_ENV = "CASCADE_RELIABILITY_RESULTS"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@dataclass
class CaseRecord:
    """What one case tried and what it saw; written as one JSON line for the report."""

    nodeid: str
    area: str = ""
    name: str = ""
    facts: dict[str, Any] = field(default_factory=dict)

    def case(self, area: str, name: str) -> None:
        """``area``: ``fault``, ``load`` or ``bad input``; ``name``: what was done, in words."""
        self.area, self.name = area, name

    def evidence(self, **facts: Any) -> None:
        """Figures and words that show the outcome (JSON-ready values)."""
        self.facts.update(facts)


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Iterator[CaseRecord]:
    entry = CaseRecord(nodeid=request.node.nodeid)
    began = time.monotonic()
    yield entry
    target = os.environ.get(RESULTS_ENV)
    if not target or not entry.area:
        return
    reports = request.node.stash.get(_REPORTS, {})
    failed = any(r.failed for r in reports.values())
    line = {
        "area": entry.area,
        "case": entry.name,
        "outcome": "failed" if failed else "passed",
        "evidence": entry.facts,
        "test": entry.nodeid,
        "seconds": round(time.monotonic() - began, 1),
    }
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, default=str) + "\n")


@pytest.fixture(scope="session")
def small_clip(tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str) -> Path:
    """A 4 s 320x180 30 fps H.264 (keyframe each second, ~300 kbit/s) + AAC FLV, to loop."""
    path = tmp_path_factory.mktemp("media") / "small.flv"
    make_small_clip(ffmpeg_exe, path)
    return path


def make_small_clip(ffmpeg: str, path: Path, *, size: str = "320x180", seconds: int = 4) -> Path:
    subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-f", "lavfi", "-i", f"testsrc2=s={size}:r=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "300k",
         "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "48k", "-f", "flv", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path
