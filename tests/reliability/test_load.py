"""Load held: 20 targets in 4 groups live at once on a real agent, hundreds of WebSocket
subscribers and a burst of toggles, with the agent's memory and open files sampled every
second (the scenario is :mod:`tests.reliability.load`).

The normal suite runs a 45 s window (about a minute in all) — measured on this 2-core
machine, 20 targets cost the agent about 15 % of one core and its children about as much
again, so all 20 fit in CI beside the other tests. The ``soak`` run (``-m soak``, or
``scripts/soak.py --minutes N``) is the same scenario for as long as asked, with a storm
every two minutes.

The bounds, the same for both (:func:`tests.reliability.load.check`): RSS at the end of the
window at most 10 MB above its start (after the warm-up), open files back within 4 of the
start, the same children (20 pushes, the encoder, the ingest), a stats event of every group
at least every 3 s, every toggle answered, every subscriber connected, and every target but
the toggled one received in one session without a hole in its timestamps.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from tests.reliability.conftest import CaseRecord
from tests.reliability.load import (
    FD_DRIFT,
    RSS_LATE_GROWTH_MB,
    RSS_MAX_MB,
    STATS_MAX_GAP_S,
    TOGGLED,
    LoadFigures,
    LoadPlan,
    check,
    run_load,
)

CI_WINDOW_S = 45.0
SOAK_MINUTES_ENV = "CASCADE_SOAK_MINUTES"
SOAK_JSON_ENV = "CASCADE_SOAK_JSON"


def summary(figures: LoadFigures) -> dict[str, object]:
    """The figures the report shows."""
    others = [f for t, files in figures.received.items() if t != TOGGLED for f in files]
    return {
        "targets": figures.targets,
        "groups": figures.groups,
        "minutes": figures.minutes,
        "rss_mb": [figures.rss_start_mb, figures.rss_end_mb, figures.rss_max_mb],
        "rss_growth_mb": figures.rss_growth_mb,
        "rss_late_growth_mb": figures.rss_late_growth_mb,
        "fds": [figures.fds_start, figures.fds_end, figures.fds_max],
        "stats_max_gap_s": max(figures.stats_max_gap_s.values(), default=None),
        "agent_cpu_percent": figures.agent_cpu_percent,
        "subscribers": figures.subscribers_connected,
        "toggles": figures.toggles_answered,
        "toggle_ms_p50_max": [figures.toggle_ms_p50, figures.toggle_ms_max],
        "streams_checked": len(others),
        "largest_hole_s": max((f["max_gap_s"] for f in others), default=None),
        "bounds": {
            "rss_max_mb": RSS_MAX_MB,
            "rss_late_growth_mb": RSS_LATE_GROWTH_MB,
            "fd_drift": FD_DRIFT,
            "stats_max_gap_s": STATS_MAX_GAP_S,
        },
    }


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_twenty_targets_with_a_storm_of_clients_hold_memory_files_and_timing(
    ffmpeg_exe: str, small_clip: Path, tmp_path: Path, record: CaseRecord
) -> None:
    record.case("load", f"20 targets in 4 groups, {CI_WINDOW_S:g} s, 200 subscribers, 100 toggles")
    figures = asyncio.run(
        run_load(LoadPlan(seconds=CI_WINDOW_S), tmp_path / "load", ffmpeg_exe, small_clip,
                 progress=lambda line: None)
    )  # fmt: skip
    record.evidence(**summary(figures))
    assert len(figures.received) == figures.targets  # every stream was recorded and read
    missed = check(figures)
    assert not missed, "\n".join(missed)


@pytest.mark.soak
@pytest.mark.timeout(0)
def test_the_soak_holds_for_as_long_as_asked(
    ffmpeg_exe: str, small_clip: Path, tmp_path: Path, record: CaseRecord
) -> None:
    minutes = float(os.environ.get(SOAK_MINUTES_ENV, "60"))
    record.case("load", f"soak: 20 targets in 4 groups for {minutes:g} min")
    plan = LoadPlan(seconds=minutes * 60, storm_every_s=120.0, record="some")
    figures = asyncio.run(
        run_load(plan, tmp_path / "soak", ffmpeg_exe, small_clip, progress=lambda line: None)
    )
    record.evidence(**summary(figures))
    if out := os.environ.get(SOAK_JSON_ENV):
        Path(out).write_text(json.dumps(figures.to_json(), indent=1))
    missed = check(figures)
    assert not missed, "\n".join(missed)
