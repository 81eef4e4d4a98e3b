"""The relay benchmark runs end to end: nginx-rtmp, the FFmpeg tee and Cascade, one target.

One short run (``--targets 1 --seconds 4``, re-encode and toggle/re-listen probes included)
in a subprocess, as a person would start it. The tests check that it completes and reports
real figures — never the figures against their budgets: timings belong to the benchmark, not
to a unit test. Without nginx and its RTMP module every test fails, saying what to install.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from benchmarks.peers import find_nginx
from benchmarks.procs import BenchmarkError

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


@dataclass
class SmokeRun:
    missing: str = ""  # why the benchmark could not run at all
    result: subprocess.CompletedProcess[str] | None = None
    data: dict[str, Any] | None = None

    def checked(self) -> tuple[str, dict[str, Any]]:
        """The printed table and the JSON, or a failure saying what went wrong."""
        if self.missing:
            pytest.fail(self.missing, pytrace=False)
        assert self.result is not None
        assert self.result.returncode == 0, self.result.stdout + self.result.stderr
        assert self.data is not None
        return self.result.stdout, self.data


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> SmokeRun:
    try:
        find_nginx()
    except BenchmarkError as exc:
        return SmokeRun(
            missing=f"the relay benchmark needs nginx with its RTMP module: {exc} "
            "(.ci/run installs them as root)"
        )
    folder = tmp_path_factory.mktemp("bench")
    out = folder / "bench.json"
    result = subprocess.run(
        [
            sys.executable, "-m", "benchmarks.relay", "--targets", "1", "--seconds", "4",
            "--json", str(out), "--cache-dir", str(folder / "cache"),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=140,
    )  # fmt: skip
    data = json.loads(out.read_text()) if out.exists() else None
    return SmokeRun(result=result, data=data)


def test_every_relay_is_measured_with_real_cpu_memory_and_delivery_figures(
    smoke: SmokeRun,
) -> None:
    _, data = smoke.checked()
    runs = data["passthrough"]["1"]
    assert set(runs) == {"nginx", "tee", "cascade"}
    for relay, run in runs.items():
        assert run["cpu_s"] > 0, relay
        assert run["cpu_total_s"] >= run["cpu_s"], relay
        assert run["memory"]["uss_median_mb"] > 0, relay
        assert run["delivered_mb"] > 0, relay
    assert runs["cascade"]["memory"]["root_rss_peak_mb"] > 0
    assert data["ratios"]["1"]["cpu_vs_tee"] > 0
    assert data["ratios"]["1"]["cpu_vs_nginx"] > 0


def test_the_re_encode_comparison_measures_both_sides(smoke: SmokeRun) -> None:
    _, data = smoke.checked()
    reencode = data["reencode"]
    assert reencode["cascade_cpu_s"] > 0
    assert reencode["encode_alone_cpu_s"] > 0
    assert reencode["ratio_vs_encode_plus_tee"] > 0


def test_the_toggle_and_relisten_probes_report_their_timings(smoke: SmokeRun) -> None:
    _, data = smoke.checked()
    probe = data["probe"]
    assert probe["first_keyframe_s"] is not None and probe["first_keyframe_s"] >= 0
    assert len(probe["relisten_s"]) == 3 and all(s >= 0 for s in probe["relisten_s"])


def test_the_table_lists_every_relay_and_each_budget_with_its_mark(smoke: SmokeRun) -> None:
    table, data = smoke.checked()
    assert "Passthrough" in table and "Budgets" in table
    for relay in ("nginx", "tee", "cascade"):
        assert f"  {relay} " in table
    judged = [b for b in data["budgets"] if b["limit"] is not None]
    assert judged
    for budget in judged:
        assert budget["name"] in table
    assert table.count("PASS") + table.count("FAIL") == len(judged)
