"""Desktop notifications: what is worth one, at most one per subject per quiet period."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent.core.events import (
    ErrorRaised,
    Event,
    GroupStateChanged,
    IngestStateChanged,
    LogLine,
    ShowRequested,
    StatsUpdated,
    TargetStateChanged,
)
from agent.tray.notify import QUIET_SECONDS, Notifier, describe
from tests.streams import Publisher, wait_listening
from tests.tray.conftest import INGEST_KEY, WAIT, Rig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def notifier(*, enabled: bool = True) -> tuple[Notifier, list[tuple[str, str]], Clock]:
    sent: list[tuple[str, str]] = []
    clock = Clock()
    return (
        Notifier(lambda msg, title: sent.append((title, msg)), enabled=enabled, clock=clock),
        sent,
        clock,
    )


RECEIVING = IngestStateChanged(state="receiving", info={"video_codec": "h264"})
ENDED = IngestStateChanged(state="ended", reason="the publisher disconnected")
YT_FAILED = TargetStateChanged(
    group="main", target="yt", state="failed", reason="the stream key was refused"
)
TW_FAILED = TargetStateChanged(group="main", target="tw", state="failed")
WRONG_KEY = ErrorRaised(  # as agent/core/ingest.py publishes it
    source="ingest",
    message="a publisher connected with a wrong stream key and was refused",
    hint="In OBS → Settings → Stream, use the server and stream key that Cascade shows",
)


def test_describe_ingest_receiving_and_ended() -> None:
    assert describe(RECEIVING) == (
        "ingest",
        "OBS is streaming",
        "Cascade is receiving the stream.",
    )
    assert describe(ENDED) == (
        "ingest",
        "OBS stopped streaming",
        "Armed groups have ended their outputs.",
    )


def test_describe_a_target_that_failed_for_good() -> None:
    assert describe(YT_FAILED) == (
        "failed:yt",
        "yt stopped for good",
        "the stream key was refused. Fix it, then switch it off and on.",
    )
    assert describe(TW_FAILED) == (
        "failed:tw",
        "tw stopped for good",
        "It cannot be started. Fix it, then switch it off and on.",
    )


def test_describe_a_wrong_stream_key() -> None:
    assert describe(WRONG_KEY) == (
        "wrong-key",
        "Stream key refused",
        f"{WRONG_KEY.message}. {WRONG_KEY.hint}",
    )
    no_hint = ErrorRaised(source="ingest", message="wrong stream key")
    assert describe(no_hint) == ("wrong-key", "Stream key refused", "wrong stream key.")


@pytest.mark.parametrize(
    "event",
    [
        IngestStateChanged(state="listening"),
        IngestStateChanged(state="stopped"),
        TargetStateChanged(group="main", target="yt", state="retrying", reason="refused"),
        TargetStateChanged(group="main", target="yt", state="live"),
        GroupStateChanged(group="main", state="live"),
        ErrorRaised(source="ffmpeg", message="FFmpeg was not found"),
        ErrorRaised(source="ingest", message="the ingest port is taken"),
        StatsUpdated(group="main", stats={}),
        LogLine(source="ingest", line="key"),
        ShowRequested(reason="a second cascade run"),
    ],
    ids=lambda e: f"{e.kind}:{getattr(e, 'state', '') or getattr(e, 'source', '')}",
)
def test_nothing_else_is_worth_a_notification(event: Event) -> None:
    assert describe(event) is None
    note, sent, _ = notifier()
    note.on_event(event)
    assert sent == []


def test_one_notification_per_subject_per_quiet_period() -> None:
    note, sent, clock = notifier()
    note.on_event(RECEIVING)
    note.on_event(ENDED)  # same subject (the ingest), 0 s later: quiet
    note.on_event(RECEIVING)
    note.on_event(YT_FAILED)  # other subjects are not held back
    note.on_event(TW_FAILED)
    note.on_event(WRONG_KEY)
    note.on_event(WRONG_KEY)
    assert sent == [
        ("OBS is streaming", "Cascade is receiving the stream."),
        ("yt stopped for good", YT_FAILED.reason + ". Fix it, then switch it off and on."),
        ("tw stopped for good", "It cannot be started. Fix it, then switch it off and on."),
        ("Stream key refused", f"{WRONG_KEY.message}. {WRONG_KEY.hint}"),
    ]

    clock.now += QUIET_SECONDS - 0.5
    note.on_event(ENDED)
    note.on_event(YT_FAILED)
    assert len(sent) == 4  # still within the quiet period of each subject

    clock.now += 0.5  # exactly QUIET_SECONDS after the first of each: shown again
    note.on_event(ENDED)
    note.on_event(YT_FAILED)
    note.on_event(YT_FAILED)
    assert sent[4:] == [
        ("OBS stopped streaming", "Armed groups have ended their outputs."),
        ("yt stopped for good", YT_FAILED.reason + ". Fix it, then switch it off and on."),
    ]

    clock.now += 5
    note.on_event(RECEIVING)  # the quiet period runs from the last one shown
    assert len(sent) == 6


def test_the_quiet_period_is_configurable() -> None:
    sent: list[str] = []
    clock = Clock()
    note = Notifier(lambda message, title: sent.append(title), quiet=2.0, clock=clock)
    note.on_event(RECEIVING)
    clock.now += 1.9
    note.on_event(RECEIVING)
    clock.now += 0.1
    note.on_event(RECEIVING)
    assert sent == ["OBS is streaming", "OBS is streaming"]


def test_disabled_sends_nothing_and_remembers_nothing() -> None:
    note, sent, _ = notifier(enabled=False)
    for event in (RECEIVING, ENDED, YT_FAILED, WRONG_KEY):
        note.on_event(event)
    assert sent == []
    note.enabled = True  # switched on in settings: the first news is shown at once
    note.on_event(YT_FAILED)
    assert sent == [
        ("yt stopped for good", f"{YT_FAILED.reason}. Fix it, then switch it off and on.")
    ]


def test_the_tray_notifies_what_a_real_agent_publishes(
    rig: Rig, ffmpeg_exe: str, flv_clip: Path
) -> None:
    """A wrong stream key, then OBS streaming and stopping: the tray's notifier follows the
    agent's own events (and holds back the second ingest news within the quiet period)."""
    ingest = rig.agent.profile.ingest.obs_url
    wrong = Publisher(ffmpeg_exe, flv_clip, f"{ingest}/not-the-key", seconds=2)
    subprocess.run(wrong.argv, capture_output=True, timeout=WAIT, check=False)
    rig.wait_for("the wrong key notification", lambda: rig.icon.notifications)
    assert rig.icon.notifications == [
        ("Stream key refused", rig.icon.notifications[0][1]),
    ]
    assert "wrong stream key" in rig.icon.notifications[0][1]

    rig.run(wait_listening(rig.agent.profile.ingest.port))
    right = Publisher(ffmpeg_exe, flv_clip, f"{ingest}/{INGEST_KEY}", seconds=1)
    done = subprocess.run(right.argv, capture_output=True, timeout=WAIT, check=False)
    assert done.returncode == 0, done.stderr
    rig.wait_tray("the stream ended", lambda s: s.status["ingest"]["state"] != "receiving")
    rig.wait_for("OBS streaming", lambda: len(rig.icon.notifications) >= 2)
    assert rig.icon.notifications[1:] == [
        ("OBS is streaming", "Cascade is receiving the stream."),
    ]  # "OBS stopped streaming" came within the quiet period of the same subject


def test_switching_notifications_off_while_running_is_followed(rig: Rig) -> None:
    """``notifications`` changed in the settings (the dashboard does it) takes effect at once."""
    handled: list[Event] = []
    on_event = rig.runner._on_event

    def counted(event: Event) -> None:
        on_event(event)
        handled.append(event)

    rig.runner._on_event = counted  # type: ignore[method-assign]
    rig.agent.settings.notifications = False
    rig.agent.bus.publish_threadsafe(RECEIVING)
    rig.agent.bus.publish_threadsafe(YT_FAILED)
    rig.wait_for(
        "the events handled", lambda: any(getattr(e, "target", "") == "yt" for e in handled)
    )
    assert rig.icon.notifications == []
    rig.agent.settings.notifications = True
    rig.agent.bus.publish_threadsafe(TW_FAILED)
    rig.wait_for("the notification", lambda: rig.icon.notifications)
    assert [title for title, _ in rig.icon.notifications] == ["tw stopped for good"]
