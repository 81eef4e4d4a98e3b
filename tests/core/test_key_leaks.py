"""No stream key, whole or encoded, reaches a log line, an event, the status or an error.

A relay streams to a live server and to a dead one with recognisable keys; then every output
a person or a program could read is searched for them.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from agent.core.model import Group, Target
from agent.logs import RedactingFilter
from tests.core.test_relay_e2e import Rig
from tests.streams import free_port

LIVE_KEY = "live_LEAK_7f3a+/=?&% x"
DEAD_KEY = "live_LEAK_dead+key=="


def forms(key: str) -> list[str]:
    return [key, quote(key, safe=""), quote_plus(key), quote(key)]


@pytest.fixture
def agent_log() -> Iterator[io.StringIO]:
    """The agent's log as `cascade run` writes it: every record, through the redactor."""
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield text
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.mark.slow
async def test_keys_never_reach_logs_events_status_or_errors(
    ffmpeg_exe: str, relay_clip: Path, tmp_path: Path, agent_log: io.StringIO
) -> None:
    rig = Rig(ffmpeg=ffmpeg_exe, clip=relay_clip, folder=tmp_path)
    server = await rig.platform("alpha")
    server.key = LIVE_KEY.replace("/", "_")  # what the listener expects; it accepts any
    try:
        relay = await rig.start(
            [
                Group(
                    id="main",
                    targets=[
                        Target(id="alpha", url=server.url, key=LIVE_KEY),
                        Target(id="dead", url=f"rtmp://127.0.0.1:{free_port()}/live", key=DEAD_KEY),
                    ],
                )
            ]
        )
        await relay.start_group("main")
        publisher = rig.publisher(seconds=4)
        await publisher.start()
        await publisher.wait()
        await server.wait_sessions(1)
        status = json.dumps(relay.status())
        push = relay.groups["main"].pushes["dead"]
        errors = [push.supervisor.reason, *push.supervisor.stderr_tail()]
        errors += relay.groups["main"].pushes["alpha"].supervisor.stderr_tail()
    finally:
        if rig.relay is not None:
            await rig.relay.stop()
        await server.stop()

    events = json.dumps([e.to_dict() for e in rig.events])
    outputs = {
        "log": agent_log.getvalue(),
        "events": events,
        "status": status,
        "errors": "\n".join(errors),
    }
    assert "Connection refused" in outputs["errors"], "the dead target never failed"
    assert "[redacted]" in outputs["log"], "the keys never reached the log path at all"
    assert len(server.sessions) == 1, "the live target did not stream"
    for name, text in outputs.items():
        for key in (LIVE_KEY, DEAD_KEY):
            for form in forms(key):
                assert form not in text, f"a stream key leaked into the {name}"
            assert "LEAK" not in text, f"part of a stream key leaked into the {name}"
