"""Editing the running profile end to end: real FFmpeg, a publisher like OBS, fake platforms.

Every edit is made as the API makes it: an :mod:`agent.store.editing` function returns an
edited copy of the profile (through the codec, so no stream key is in it), the relay is
checked and then follows it. What a live edit may and may not touch is in
:meth:`agent.core.relay.Relay.check`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.core.agent import Agent
from agent.core.events import (
    Event,
    GroupStateChanged,
    IngestStateChanged,
    ProcessStateChanged,
    TargetStateChanged,
)
from agent.core.group import GroupRuntime
from agent.core.model import Group, GroupMode, IngestSettings, Profile, Target
from agent.core.push import FFmpegPush
from agent.core.relay import Relay
from agent.core.settings import Settings
from agent.core.states import ProcessState
from agent.errors import Conflict
from agent.store import editing
from agent.store.codec import KEYRING_REF
from tests.core.test_relay_e2e import INGEST_KEY, Rig
from tests.streams import (
    Publisher,
    duration,
    free_port,
    is_listening,
    max_gap,
    probe,
    stream,
    video_packets,
    wait_listening,
)

pytestmark = pytest.mark.slow

#: A small, cheap re-encode: 320x180, a keyframe each second.
SMALL: dict[str, Any] = {
    "mode": "reencode",
    "video": {
        "width": 320,
        "height": 180,
        "fps": 30,
        "bitrate_kbps": 500,
        "keyframe_interval_s": 1.0,
        "preset": "ultrafast",
    },
    "audio": {"codec": "aac", "bitrate_kbps": 64},
}
NOWHERE = "rtmp://127.0.0.1:9/live"  # a target that never runs in the test


@dataclass
class EditRig(Rig):
    """The end-to-end rig with targets as a loaded profile has them: keys in a key store."""

    publishers: list[Publisher] = field(default_factory=list)

    def target(self, name: str, **kwargs: object) -> Target:
        server = self.platforms.get(name)
        url = server.url if server is not None else NOWHERE
        return Target(id=name, url=url, key_ref=KEYRING_REF, **kwargs)  # type: ignore[arg-type]

    def spec(self, name: str, **kwargs: object) -> dict[str, object]:
        """What a person sends to add a target: no key, only where it lives."""
        return {"id": name, "url": self.platforms[name].url, "key_ref": KEYRING_REF, **kwargs}

    def key(self, target: Target) -> str | None:
        server = self.platforms.get(target.id)
        return server.key if server is not None else None

    async def start(
        self, groups: list[Group], ingest: IngestSettings | None = None, **relay_kwargs: object
    ) -> Relay:
        return await super().start(groups, ingest, keys=self.key, **relay_kwargs)

    def publisher(self, seconds: float | None = None) -> Publisher:
        publisher = super().publisher(seconds)
        self.publishers.append(publisher)
        return publisher

    @property
    def live_relay(self) -> Relay:
        assert self.relay is not None
        return self.relay

    async def apply(self, edited: Profile) -> None:
        """What the API does with an edit: check it, then make the relay follow it."""
        self.live_relay.check(edited)
        await self.live_relay.apply(edited)

    def states(self, kind: type[Event], **match: str) -> list[str]:
        return [
            e.state  # type: ignore[attr-defined]
            for e in self.events
            if isinstance(e, kind) and all(getattr(e, k) == v for k, v in match.items())
        ]

    def starts(self, name: str) -> int:
        return [c.new for c in self.process_changes(name)].count("starting")


@pytest.fixture
async def rig(ffmpeg_exe: str, relay_clip: Path, tmp_path: Path) -> AsyncIterator[EditRig]:
    rig = EditRig(ffmpeg=ffmpeg_exe, clip=relay_clip, folder=tmp_path)
    yield rig
    for publisher in rig.publishers:
        await publisher.stop()
    if rig.relay is not None:
        await rig.relay.stop()
    for server in rig.platforms.values():
        await server.stop()


def layout(relay: Relay) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """Groups and targets with their states, as status() shows them."""
    return [
        (g["id"], g["state"], [(t["id"], t["state"]) for t in g["targets"]])
        for g in relay.status()["groups"]
    ]


def runtimes(relay: Relay) -> dict[str, tuple[GroupRuntime, dict[str, FFmpegPush]]]:
    return {gid: (g, dict(g.pushes)) for gid, g in relay.groups.items()}


def starts_at_keyframe(path: Path) -> bool:
    packets = video_packets(path)
    return bool(packets) and packets[0][1]


def height(path: Path) -> int:
    return int(stream(probe(path), "video")["height"])


async def test_live_edits_add_rename_and_switch_targets_leaving_the_running_one_alone(
    rig: EditRig,
) -> None:
    for name in ("alpha", "beta", "gamma"):
        await rig.platform(name)
    relay = await rig.start([Group(id="main", targets=[rig.target("alpha")])])
    await relay.start_group("main")
    publisher = rig.publisher(seconds=12)
    await publisher.start()
    await rig.wait_for(lambda: rig.target_state("alpha") == "live")
    main = relay.groups["main"]
    alpha = main.pushes["alpha"]

    # Names: allowed live, nothing running moves.
    await rig.apply(editing.edit_group(relay.profile, "main", {"name": "Main show"}, None))
    await rig.apply(editing.edit_target(relay.profile, "alpha", {"name": "Alpha TV"}))
    assert relay.groups["main"] is main and main.pushes["alpha"] is alpha
    assert main.group is relay.profile.group("main") and alpha.target.name == "Alpha TV"
    assert relay.status()["groups"][0]["name"] == "Main show"
    assert rig.target_state("alpha") == "live"

    # A target added to the live group starts at once, at a keyframe.
    await rig.apply(editing.add_target(relay.profile, "main", rig.spec("beta")))
    beta = main.pushes["beta"]
    await rig.wait_for(lambda: rig.target_state("beta") == "live")
    assert beta.subscriber is not None and beta.subscriber.first_keyframe_at is not None

    # A group added while another is live is idle until started.
    await rig.apply(editing.add_group(relay.profile, {"id": "side"}, None))
    await rig.apply(editing.add_target(relay.profile, "side", rig.spec("gamma")))
    assert relay.groups["side"].state == "idle" and rig.target_state("gamma") == "idle"
    assert rig.states(GroupStateChanged, group="side") == ["idle"]
    assert rig.process_changes("target:gamma") == []
    await relay.start_group("side")
    await rig.wait_for(lambda: rig.target_state("gamma") == "live")

    # A target switched off by an edit stops alone; switched on again, it resumes.
    await asyncio.sleep(1.0)
    await rig.apply(editing.edit_target(relay.profile, "beta", {"enabled": False}))
    assert rig.target_state("beta") == "disabled"
    await rig.platforms["beta"].wait_sessions(1)
    assert rig.target_state("alpha") == "live" and rig.target_state("gamma") == "live"
    await asyncio.sleep(0.5)
    await rig.apply(editing.edit_target(relay.profile, "beta", {"enabled": True}))
    assert main.pushes["beta"] is beta
    await rig.wait_for(lambda: rig.target_state("beta") == "live")
    beta_states = rig.states(TargetStateChanged, target="beta")
    assert "disabled" in beta_states and beta_states[-1] == "live", beta_states
    assert layout(relay) == [
        ("main", "live", [("alpha", "live"), ("beta", "live")]),
        ("side", "live", [("gamma", "live")]),
    ]

    await publisher.wait()
    await rig.platforms["alpha"].wait_sessions(1)
    await rig.platforms["beta"].wait_sessions(2)
    await rig.platforms["gamma"].wait_sessions(1)
    received = rig.platforms["alpha"].sessions
    assert len(received) == 1, "alpha reconnected"
    assert max_gap(video_packets(received[0])) < 0.1, "alpha has a gap in its timestamps"
    assert duration(probe(received[0])) == pytest.approx(12.0, abs=1.0)
    assert rig.starts("target:alpha") == 1
    for session in [*rig.platforms["beta"].sessions, *rig.platforms["gamma"].sessions]:
        assert starts_at_keyframe(session), f"{session} did not start at a keyframe"
    assert len(rig.platforms["gamma"].sessions) == 1


async def test_edits_that_would_change_something_running_are_refused_and_change_nothing(
    rig: EditRig,
) -> None:
    for name in ("alpha", "gamma"):
        await rig.platform(name)
    relay = await rig.start(
        [
            Group(id="main", targets=[rig.target("alpha"), rig.target("spare", enabled=False)]),
            Group(id="small", targets=[rig.target("gamma")]),
        ]
    )
    # The re-encode group is made by an edit, as a person would make it.
    await rig.apply(editing.edit_group(relay.profile, "small", SMALL, None))
    await relay.start_all()
    publisher = rig.publisher(seconds=7)
    await publisher.start()
    await rig.wait_for(
        lambda: rig.target_state("alpha") == "live" and rig.target_state("gamma") == "live"
    )
    before = relay.profile
    running = runtimes(relay)
    port = before.ingest.port

    refused = {
        "mode of the live passthrough group": (
            "group 'main'",
            editing.edit_group(before, "main", {"mode": "reencode"}, None),
        ),
        "bitrate of the live re-encode group": (
            "group 'small'",
            editing.edit_group(before, "small", {"video": {"bitrate_kbps": 800}}, None),
        ),
        "audio of the live re-encode group": (
            "group 'small'",
            editing.edit_group(before, "small", {"audio": {"bitrate_kbps": 96}}, None),
        ),
        "removing the live group": ("group 'main'", editing.remove_group(before, "main")),
        "removing the live re-encode group": (
            "group 'small'",
            editing.remove_group(before, "small"),
        ),
        "removing the sending target": ("target 'alpha'", editing.remove_target(before, "alpha")),
        "the sending target's url": (
            "target 'alpha'",
            editing.edit_target(before, "alpha", {"url": f"{NOWHERE}/elsewhere"}),
        ),
        "the ingest port while a stream comes in": (
            "ingest",
            editing.edit_ingest(before, {"port": free_port()}),
        ),
    }
    for what, (subject, edited) in refused.items():
        with pytest.raises(Conflict) as checked:
            relay.check(edited)
        assert checked.value.subject == subject, what
        with pytest.raises(Conflict):
            await relay.apply(edited)
        assert relay.profile is before, what
        assert runtimes(relay) == running, what
        assert relay.ingest.settings == before.ingest and relay.source.session_active, what
        assert rig.target_state("alpha") == "live" and rig.target_state("gamma") == "live", what
    assert [g.id for g in relay.profile.groups] == ["main", "small"]
    assert relay.profile.group("main").mode is GroupMode.PASSTHROUGH
    assert relay.profile.group("small").video.bitrate_kbps == 500
    assert relay.profile.ingest.port == port

    # What is not running may change while live: the switched-off target's server.
    await rig.apply(editing.edit_target(relay.profile, "spare", {"url": f"{NOWHERE}/new"}))
    assert relay.groups["main"].pushes["spare"].target.url == f"{NOWHERE}/new"
    assert runtimes(relay) == running

    await publisher.wait()
    await rig.platforms["alpha"].wait_sessions(1)
    await rig.platforms["gamma"].wait_sessions(1)
    alpha = rig.platforms["alpha"].sessions
    assert len(alpha) == 1 and max_gap(video_packets(alpha[0])) < 0.1
    assert duration(probe(alpha[0])) == pytest.approx(7.0, abs=1.0)
    assert len(rig.platforms["gamma"].sessions) == 1
    assert height(rig.platforms["gamma"].sessions[0]) == 180
    assert rig.starts("target:alpha") == rig.starts("encoder:small") == 1
    assert rig.process_changes("target:spare") == []


async def test_idle_edits_move_the_ingest_rebuild_the_encoder_and_remove_cleanly(
    rig: EditRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("alpha", "beta", "gamma", "delta"):
        await rig.platform(name)
    relay = await rig.start(
        [
            Group(id="main", targets=[rig.target("alpha"), rig.target("beta")]),
            Group(id="small", targets=[rig.target("gamma")]),
            Group(id="extra", targets=[rig.target("delta")]),
        ]
    )
    await relay.start_group("main")
    await relay.start_group("extra")
    first = rig.publisher(seconds=2)
    await first.start()
    await first.wait()
    for name in ("alpha", "beta", "delta"):
        await rig.platforms[name].wait_sessions(1)
    await rig.wait_for(lambda: not any(g.busy for g in relay.groups.values()))
    old_port = relay.profile.ingest.port
    old_small, extra = relay.groups["small"], relay.groups["extra"]
    beta, delta = relay.groups["main"].pushes["beta"], extra.pushes["delta"]
    assert delta.supervisor.state is ProcessState.EXITED  # ended with the stream

    # The ingest moves to another port.
    new_port = free_port()
    await rig.apply(editing.edit_ingest(relay.profile, {"port": new_port}))
    await wait_listening(new_port)
    assert not is_listening(old_port)
    assert relay.status()["ingest"]["url"] == f"rtmp://127.0.0.1:{new_port}/live"
    assert rig.states(IngestStateChanged)[-2:] == ["stopped", "listening"]

    # The stopped group's encoding changes: a new runtime that re-encodes.
    await rig.apply(editing.edit_group(relay.profile, "small", SMALL, None))
    assert relay.groups["small"] is not old_small and relay.groups["small"].encoder is not None

    # A group and a target are removed: gone from status(), their children stopped.
    await rig.apply(editing.remove_group(relay.profile, "extra"))
    await rig.apply(editing.remove_target(relay.profile, "beta"))
    assert layout(relay) == [
        ("main", "waiting", [("alpha", "waiting")]),
        ("small", "idle", [("gamma", "idle")]),
    ]
    assert relay.status()["totals"]["targets"] == 2
    assert delta.supervisor.state is ProcessState.STOPPED
    assert beta.supervisor.state is ProcessState.STOPPED

    # Removed and replaced runtimes no longer listen to the bus.
    reacted: list[str] = []
    for what, gone in [
        ("old small", old_small),
        ("extra", extra),
        ("delta", delta),
        ("beta", beta),
        ("old gamma", old_small.pushes["gamma"]),
    ]:
        monkeypatch.setattr(gone, "publish_state", lambda what=what: reacted.append(what))
    kept: list[str] = []
    main = relay.groups["main"]
    main_publish = main.publish_state
    monkeypatch.setattr(main, "publish_state", lambda: (kept.append("main"), main_publish()))
    rig.bus.publish(ProcessStateChanged(name="target:delta", old="stopping", new="stopped"))
    rig.bus.publish(ProcessStateChanged(name="target:beta", old="stopping", new="stopped"))
    assert kept == ["main", "main"]  # the way of looking works: a kept group reacts

    # A publisher on the new port reaches the started group and the rebuilt one.
    await relay.start_group("small")
    second = rig.publisher(seconds=3)
    await second.start()
    await second.wait()
    await rig.platforms["alpha"].wait_sessions(2)
    await rig.platforms["gamma"].wait_sessions(1)
    assert height(rig.platforms["alpha"].sessions[1]) == 360
    assert height(rig.platforms["gamma"].sessions[0]) == 180
    assert len(rig.platforms["beta"].sessions) == len(rig.platforms["delta"].sessions) == 1
    assert rig.starts("target:beta") == rig.starts("target:delta") == 1
    assert rig.starts("encoder:small") == 1
    assert reacted == [], f"removed runtimes still react to the bus: {reacted}"
    assert relay.ingest.sessions == 2


async def test_a_waiting_group_rebuilt_by_an_encoding_edit_keeps_its_standing_order(
    rig: EditRig,
) -> None:
    for name in ("alpha", "gamma"):
        await rig.platform(name)
    relay = await rig.start(
        [
            Group(id="main", targets=[rig.target("alpha")]),
            Group(id="small", targets=[rig.target("gamma")]),
        ]
    )
    await relay.start_group("main")  # started by hand, waiting for OBS
    await relay.arm_group("small")  # a standing order
    before = runtimes(relay)
    await rig.apply(editing.edit_group(relay.profile, "main", SMALL, None))
    await rig.apply(editing.edit_group(relay.profile, "small", SMALL, None))
    assert all(relay.groups[gid] is not before[gid][0] for gid in ("main", "small"))
    assert relay.profile.group("small").armed and not relay.profile.group("main").armed
    assert [relay.groups[g].state for g in ("main", "small")] == ["waiting", "armed"]
    assert rig.states(GroupStateChanged, group="small")[-1] == "armed"

    publisher = rig.publisher(seconds=3)
    await publisher.start()
    await rig.wait_for(
        lambda: rig.target_state("alpha") == "live" and rig.target_state("gamma") == "live"
    )
    await publisher.wait()
    for name in ("alpha", "gamma"):
        await rig.platforms[name].wait_sessions(1)
        assert height(rig.platforms[name].sessions[0]) == 180
        assert starts_at_keyframe(rig.platforms[name].sessions[0])
    await rig.wait_for(lambda: relay.groups["small"].state == "armed")
    assert relay.groups["main"].state == "waiting"


async def test_arming_and_disarming_by_an_edit_acts_like_arm_and_disarm(rig: EditRig) -> None:
    for name in ("alpha", "beta"):
        await rig.platform(name)
    relay = await rig.start(
        [
            Group(id="main", targets=[rig.target("alpha")]),
            Group(id="side", targets=[rig.target("beta")]),
        ]
    )
    await relay.start_group("main")
    publisher = rig.publisher(seconds=8)
    await publisher.start()
    await rig.wait_for(lambda: rig.target_state("alpha") == "live")
    await asyncio.sleep(0.5)

    await rig.apply(editing.edit_group(relay.profile, "side", {"armed": True}, None))
    await rig.wait_for(lambda: rig.target_state("beta") == "live", timeout=10)
    assert relay.groups["side"].state == "live"
    await asyncio.sleep(1.0)
    await rig.apply(editing.edit_group(relay.profile, "side", {"armed": False}, None))
    assert relay.groups["side"].state == "idle" and rig.target_state("beta") == "idle"
    assert not relay.groups["side"].busy
    await rig.platforms["beta"].wait_sessions(1)
    assert rig.target_state("alpha") == "live"

    await publisher.wait()
    await rig.platforms["alpha"].wait_sessions(1)
    assert len(rig.platforms["alpha"].sessions) == 1
    assert max_gap(video_packets(rig.platforms["alpha"].sessions[0])) < 0.1
    assert starts_at_keyframe(rig.platforms["beta"].sessions[0])
    assert rig.states(GroupStateChanged, group="side")[-1] == "idle"


async def test_the_agent_refuses_a_profile_switch_unless_idle(
    ffmpeg_exe: str, tmp_path: Path
) -> None:
    ports = free_port(), free_port()
    first, second = (
        Profile(
            name=name,
            ingest=IngestSettings(port=port, key=INGEST_KEY),
            groups=[Group(id="main", targets=[Target(id="out", url=NOWHERE)])],
        )
        for name, port in zip(("first", "second"), ports, strict=True)
    )
    agent = Agent(tmp_path, settings=Settings(ffmpeg=ffmpeg_exe), profile=first)
    seen: list[Event] = []
    agent.bus.add_listener(seen.append)
    await agent.start()
    try:
        relay = agent.relay
        assert relay is not None
        await wait_listening(ports[0])
        await relay.start_group("main")  # waiting for OBS: nothing runs, but it is started
        assert not agent.idle
        with pytest.raises(Conflict):
            await agent.switch_profile(second, lambda t: None)
        agent.check_profile(editing.remove_group(first, "main"))  # waiting: nothing runs
        assert agent.relay is relay and agent.profile is first and relay.profile is first
        assert relay.groups["main"].live and is_listening(ports[0])

        # Edits of what is not running are followed by the agent's relay.
        await agent.apply_profile(editing.edit_ingest(first, {"port": ports[1]}))
        await wait_listening(ports[1])
        assert agent.profile is relay.profile and agent.profile.ingest.port == ports[1]

        await relay.stop_group("main")
        assert agent.idle
        third = editing.edit_ingest(second, {"port": free_port()})
        await agent.switch_profile(third, lambda t: None)
        assert agent.relay is not relay and agent.relay is not None
        assert agent.profile is third and agent.relay.profile is third
        await wait_listening(third.ingest.port)
        assert not is_listening(ports[1])
        ingest = [e.state for e in seen if isinstance(e, IngestStateChanged)]
        assert ingest[-2:] == ["stopped", "listening"], ingest  # the old ingest is quiet
    finally:
        await agent.stop()
