"""The API benchmark runs end to end: a real agent started, timed and stopped.

One short run (``--calls 20``) in a subprocess, started the way a person starts it
(``python benchmarks/api_latency.py``). The test checks that it completes and reports real
figures and a mark for each budget — never the figures against their budgets: timings belong
to the benchmark, not to a unit test (exit code 1, a budget missed, is a valid run here).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CALLS = 20

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def test_the_api_benchmark_measures_start_up_latency_and_memory(tmp_path: Path) -> None:
    out = tmp_path / "api.json"
    script = ROOT / "benchmarks" / "api_latency.py"
    result = subprocess.run(
        [sys.executable, str(script), "--calls", str(CALLS), "--json", str(out)],
        cwd=tmp_path,  # a script run from anywhere: it finds the agent by itself
        capture_output=True,
        text=True,
        timeout=80,
    )
    report = result.stdout
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 2: not measured
    data = json.loads(out.read_text())

    assert data["calls"] == CALLS
    assert data["profile"] == {"groups": 3, "targets": 7}
    assert data["startup_to_healthz_s"] > 0
    assert data["ready_s"] >= data["startup_to_healthz_s"]
    for key in ("latency_ms", "latency_during_startup_ms"):
        lat = data[key]
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"], (key, lat)
    assert data["idle_rss_mb"] > 0
    assert data["agent_exit_code"] == 0

    assert "Latency of GET /api/v1/status" in report and "Budgets" in report
    for line in (
        "cascade run --headless to /healthz",
        f"GET /api/v1/status p99 of {CALLS} sequential calls",
        "agent RSS idle (Python process alone)",
    ):
        assert line in report, report
    assert report.count("PASS") + report.count("FAIL") == len(data["budgets"]) == 3
    assert (result.returncode == 0) == data["all_pass"] == ("FAIL" not in report)
