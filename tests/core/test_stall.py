"""Stall detection from progress timestamps."""

from __future__ import annotations

from agent.core.stall import StallDetector


def test_no_progress_for_the_timeout_is_a_stall() -> None:
    stall = StallDetector(5.0)
    stall.reset(100.0)
    assert not stall.stalled(104.9)
    assert stall.stalled(105.0)


def test_progress_pushes_the_deadline_back() -> None:
    stall = StallDetector(5.0)
    stall.reset(100.0)
    stall.progressed(103.0)
    assert stall.deadline() == 108.0
    assert not stall.stalled(107.0)


def test_progress_reported_late_never_moves_the_clock_backwards() -> None:
    stall = StallDetector(5.0)
    stall.reset(100.0)
    stall.progressed(99.0)
    assert stall.last_progress == 100.0


def test_no_timeout_means_never_stalled() -> None:
    stall = StallDetector(None)
    stall.reset(0.0)
    assert stall.deadline() is None
    assert not stall.stalled(1e9)
