"""The reliability report formats what the reliability suite recorded.

``benchmarks/reliability_report.py --results FILE`` is run as a person would, on a sample
results file (one line per case, as ``tests/reliability/conftest.py`` writes them), a sample
of the older cases' outcomes and a sample soak; the tables must carry every case with its
outcome and evidence, and the exit code must say whether every case passed. The suite itself
is not run here: it runs in the normal test run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "reliability_report.py"

LOAD = {
    "targets": 20, "groups": 4, "minutes": 0.75, "rss_mb": [57.4, 63.2, 63.3],
    "rss_growth_mb": 5.8, "rss_late_growth_mb": 0.2, "fds": [76, 76, 286], "stats_max_gap_s": 1.1,
    "agent_cpu_percent": 14.2, "subscribers": 200, "toggles": 100,
    "toggle_ms_p50_max": [260.0, 654.1], "streams_checked": 19, "largest_hole_s": 0.064,
    "bounds": {"rss_max_mb": 90.0, "rss_late_growth_mb": 3.0, "fd_drift": 4,
               "stats_max_gap_s": 3.0},
}  # fmt: skip
RECORDS: list[dict[str, Any]] = [
    {
        "area": "fault", "case": "target server resets the connection mid-stream",
        "outcome": "passed", "test": "t::a", "seconds": 1.0,
        "evidence": {
            "error": "target 'reset' exited with code 1: Connection reset by peer",
            "back_after_s": 1.2,
            "witnesses": {"alpha": {"max_gap_s": 0.034}, "beta": {"max_gap_s": 0.034}},
        },
    },
    {
        "area": "fault", "case": "the disk fills up under a recording target",
        "outcome": "failed", "test": "t::b", "seconds": 1.0,
        "evidence": {"error": "No space left on device"},
    },
    {"area": "load", "case": "20 targets in 4 groups, 45 s", "outcome": "passed",
     "test": "t::c", "seconds": 60.0, "evidence": LOAD},
    {
        "area": "bad input", "case": "hostile API bodies, ids and URLs while live",
        "outcome": "passed", "test": "t::d", "seconds": 1.0,
        "evidence": {"tried": 97, "answers": {"400": 14, "404": 30}, "profile": "unchanged"},
    },
]  # fmt: skip
OUTCOMES = [
    {"nodeid": "tests/api/test_fuzz.py::test_x[a]", "when": "call", "outcome": "passed"},
    {"nodeid": "tests/api/test_fuzz.py::test_x[b]", "when": "call", "outcome": "failed"},
    {"nodeid": "tests/platform/test_containment.py::T::t", "when": "call", "outcome": "passed"},
]


def run_report(tmp_path: Path, records: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in records))
    outcomes = tmp_path / "outcomes.jsonl"
    outcomes.write_text("".join(json.dumps(o) + "\n" for o in OUTCOMES))
    soak = tmp_path / "soak.json"
    soak.write_text(json.dumps({"summary": {**LOAD, "minutes": 10.0}, "missed": [],
                                "finished_at": "2026-11-21 22:00:00"}))  # fmt: skip
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--results", str(results), "--outcomes", str(outcomes),
         "--soak", str(soak), "--out", str(tmp_path / "report.md")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_report_tables_every_case_with_its_outcome_and_evidence(tmp_path: Path) -> None:
    result = run_report(tmp_path, RECORDS)
    text = result.stdout
    assert result.returncode == 1, result.stderr  # one case failed
    assert "## Faults injected: 1 of 2 survived" in text
    assert "| target server resets the connection mid-stream | yes | back after 1.2 s;" in text
    assert "2 untouched targets: 1 session each, largest hole 0.034 s" in text
    assert "| the disk fills up under a recording target | **NO** |" in text
    assert (
        "| 20 targets in 4 groups, 45 s | 20 | 0.75 | 57.4 / 63.2 / 63.3 (≤ 90.0) "
        "| +5.8 / +0.2 (≤ 3.0) |" in text
    )
    assert "| soak script (2026-11-21 22:00:00, held) | 20 | 10.0 |" in text
    assert "## Bad input tried: 1 of 1 handled" in text
    assert "97 tried" in text and "400×14" in text
    assert "| bad input | tests/api/test_fuzz.py | 1 of 2 passed |" in text
    assert "| fault | tests/platform/test_containment.py | 1 of 1 passed |" in text
    assert (tmp_path / "report.md").read_text() == text.removesuffix("\n")  # print adds one


def test_a_run_where_every_case_passed_exits_zero(tmp_path: Path) -> None:
    result = run_report(tmp_path, [r for r in RECORDS if r["outcome"] == "passed"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "## Faults injected: 1 of 1 survived" in result.stdout
