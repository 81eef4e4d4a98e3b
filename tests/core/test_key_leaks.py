"""No stream key, whole or encoded, reaches a log line, an event, the status, an error or an
answer of the local API.

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
from aiohttp.test_utils import TestClient, TestServer

from agent.api.app import create_app
from agent.api.security import Guard
from agent.control import Control
from agent.core.agent import Agent
from agent.core.model import Group, Target
from agent.core.relay import Relay, key_from_target
from agent.logs import RedactingFilter
from agent.store.profiles import ProfileStore
from agent.store.secrets import SecretStore
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


async def api_answers(relay: Relay, config: Path) -> str:
    """Every answer the local API gives about this relay, and two of its errors, as text."""
    agent = Agent(config, profile=relay.profile)
    agent.relay = relay
    control = Control(
        agent, ProfileStore(config), secrets=_no_store, keys_for=lambda name: key_from_target
    )
    guard = Guard("t" * 32, port=0)
    answers: list[str] = []
    async with TestClient(TestServer(create_app(control, guard))) as client:
        guard.port = client.server.port or 0
        auth = {"Authorization": f"Bearer {'t' * 32}"}
        for path in ("status", "stats", "profile", "groups", "groups/main", "targets/alpha"):
            answer = await client.get(f"/api/v1/{path}", headers=auth)
            answers.append(await answer.text())
        # Errors about the keyed targets: a key pasted into a bad URL, a bad key.
        changed = await client.patch(
            "/api/v1/targets/alpha", headers=auth, json={"url": f"ftp://example/{LIVE_KEY}"}
        )
        assert changed.status == 422, await changed.text()
        answers.append(await changed.text())
        bad = await client.put(
            "/api/v1/targets/dead/key", headers=auth, json={"key": f"{DEAD_KEY} {LIVE_KEY}"}
        )
        assert bad.status == 422, await bad.text()
        answers.append(await bad.text())
        async with client.ws_connect("/api/v1/events", headers=auth) as ws:
            answers.append(str((await ws.receive()).data))
    return "\n".join(answers)


def _no_store() -> SecretStore:
    raise AssertionError("no secret store is needed here")


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
        answers = await api_answers(relay, tmp_path / "config")
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
        "API answers": answers,
    }
    assert '"has_key": true' in answers, "the API answers were not collected"
    assert "Connection refused" in outputs["errors"], "the dead target never failed"
    assert "[redacted]" in outputs["log"], "the keys never reached the log path at all"
    assert len(server.sessions) == 1, "the live target did not stream"
    for name, text in outputs.items():
        for key in (LIVE_KEY, DEAD_KEY):
            for form in forms(key):
                assert form not in text, f"a stream key leaked into the {name}"
            assert "LEAK" not in text, f"part of a stream key leaked into the {name}"
