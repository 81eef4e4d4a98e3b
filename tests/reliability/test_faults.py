"""Faults survived: broken servers, killed children, a full disk, a flapping publisher, a
killed agent — with real FFmpeg and real RTMP servers.

**One relay, every fault** (the ``chaos`` fixture, one 20 s publish, so the suite stays
short): a passthrough group sends to two *witness* servers that nothing touches and to
servers behind fault proxies, one per fault — one refuses connections until 8 s in, one
resets its connection at 4 s, one stops reading at 4 s, one vanishes at 5 s and returns at
10 s — plus two targets whose FFmpeg is SIGKILLed at random moments (the seed is in the
evidence) and a recording on a tiny tmpfs that fills up, freed at 11 s. A re-encode group
sends to one more server; its encoder is SIGKILLed at 6 s. Each fault's test checks what
arrived at its server (or in its files), the events that told what happened, and that the
witnesses received the whole stream in one session without a hole in its timestamps —
which holds for every fault at once.

**The publisher flapping**: OBS connects and disconnects seven times in a row, some ends
clean, some abrupt, and once the ingest's FFmpeg is SIGKILLed under it.

**The agent killed**: ``cascade run --headless`` with an armed group is SIGKILLed while live
and started again: no FFmpeg outlives it, the profile is byte for byte what it was, and the
armed group goes live on the next publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from agent.core.model import (
    AudioSettings,
    Group,
    GroupMode,
    IngestSettings,
    Platform,
    Profile,
    Target,
    VideoSettings,
)
from agent.store.profiles import ProfileStore
from tests.agent_process import AgentProcess
from tests.reliability.conftest import CaseRecord
from tests.reliability.harness import (
    NO_GAP_S,
    Received,
    RelayRig,
    TinyDisk,
    received,
)
from tests.streams import FakePlatform, Publisher, free_port, is_listening, wait_listening

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

CLIP_S = 20.0  # relay_clip's length: the chaos publish
WITNESSES = ("alpha", "beta")
VICTIMS = ("v1", "v2")
PROXIED = ("refused", "reset", "stall", "vanish")
#: Seconds after the publish starts at which each fault is injected or lifted.
AT = {
    "reset": 4.0,
    "vanish": 5.0,
    "kill encoder": 6.0,
    "accept refused": 8.0,
    "vanish returns": 10.0,
    "free disk": 11.0,
}
BACKOFF_CAP_S = 4.0  # FAST_PUSH's cap: "back within one backoff step"
# On top of a backoff step: FFmpeg's start, the RTMP connect (a fake platform listens again
# only after its last session ended: a push that comes back first is refused once more), and
# the stats that show bytes flowing come once a second. Measured: 1-3 s; 6.4 s under load.
MARGIN_S = 4.0
DISK_FREE_AT_START = 600_000  # bytes: ~3 s of the 1.5 Mbit/s clip


@dataclass
class Chaos:
    rig: RelayRig
    seed: int
    began: float  # wall clock (time.time(), like the events' "at") when the publish started
    marks: dict[str, float] = field(default_factory=dict)  # fault -> wall clock
    kills: list[tuple[float, str]] = field(default_factory=list)  # (wall clock, child)
    recordings: list[Received] = field(default_factory=list)
    sessions: dict[str, list[Received]] = field(default_factory=dict)

    def after(self, name: str, event: dict[str, Any]) -> float:
        return float(event["at"]) - self.marks[name]

    def flowing_after(self, target: str, moment: float) -> float | None:
        """Seconds from ``moment`` (wall clock) to the first stats event (one a second) that
        shows the target live with bytes flowing; None if none does."""
        for e in self.rig.dicts("stats"):
            if e["at"] <= moment:
                continue
            for t in e["stats"]["targets"]:
                if t["id"] == target and t["state"] == "live" and (t["bitrate_kbps"] or 0) > 0:
                    return float(e["at"]) - moment
        return None


async def _run_chaos(rig: RelayRig, disk: TinyDisk, seed: int) -> Chaos:
    for name in (*WITNESSES, *VICTIMS, "delta"):
        await rig.platform(name)
    for name in PROXIED:
        await rig.platform(name, proxied=True)
    proxies = rig.proxies
    await proxies["refused"].refuse()
    proxies["stall"].stall_next()
    disk.fill(DISK_FREE_AT_START)
    recording = Target(id="disk", platform=Platform.RECORDING, url=str(disk.path / "show.mkv"))
    main = [rig.target(n) for n in (*WITNESSES, *PROXIED, *VICTIMS)] + [recording]
    small = Group(
        id="small",
        mode=GroupMode.REENCODE,
        video=VideoSettings(
            width=320, height=180, fps=30, bitrate_kbps=400,
            keyframe_interval_s=1.0, preset="ultrafast",
        ),
        audio=AudioSettings(codec="aac", bitrate_kbps=64),
        targets=[rig.target("delta")],
    )  # fmt: skip
    # A slow output is cut off after ~5 s of backlog at this bitrate: quick to show, and far
    # beyond any hiccup of a healthy FFmpeg on a busy machine.
    relay = await rig.start([Group(id="main", targets=main), small], max_lag_bytes=1_000_000)
    await relay.start_all()
    publisher = rig.publisher(seconds=CLIP_S)
    await publisher.start()
    chaos = Chaos(rig=rig, seed=seed, began=time.time())
    chaos.marks["stall"] = chaos.began
    start = rig.loop_time

    rng = random.Random(seed)
    plan: list[tuple[float, str]] = [(at, name) for name, at in AT.items()]
    for victim in VICTIMS:  # two kills each, at random moments at least 3 s apart
        first = rng.uniform(3.0, 7.0)
        plan += [
            (first, f"kill target:{victim}"),
            (rng.uniform(first + 3.0, 14.0), f"kill target:{victim}"),
        ]
    for at, name in sorted(plan):
        await asyncio.sleep(max(0.0, start + at - rig.loop_time))
        chaos.marks.setdefault(name, time.time())
        if name == "reset":
            proxies["reset"].reset()
        elif name == "vanish":
            await proxies["vanish"].vanish()
        elif name == "vanish returns":
            await proxies["vanish"].listen()
        elif name == "accept refused":
            await proxies["refused"].listen()
        elif name == "free disk":
            disk.free()
        else:  # "kill encoder" / "kill target:vN": SIGKILL whatever runs now
            child = "encoder:small" if name == "kill encoder" else name.removeprefix("kill ")
            pid = rig.pid_of(child)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    chaos.kills.append((time.time(), child))
    await publisher.wait(timeout=60)
    # Every output ends its stream cleanly once the source has ended.
    everything = [t.id for g in relay.profile.groups for t in g.targets]
    await rig.wait_for(lambda: all(rig.target_state(t) == "waiting" for t in everything), 30)
    await relay.stop()
    for name in rig.platforms:
        with contextlib.suppress(TimeoutError):
            await rig.wait_for(lambda n=name: not rig.platforms[n].connected, 10)  # type: ignore[misc]
    return chaos


@pytest.fixture(scope="module")
def chaos(
    ffmpeg_exe: str, relay_clip: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Chaos]:
    seed = int(os.environ.get("CASCADE_CHAOS_SEED", str(time.time_ns() % 1_000_000)))
    rig = RelayRig(ffmpeg_exe, relay_clip, tmp_path_factory.mktemp("chaos"))

    async def run() -> Chaos:
        try:
            with TinyDisk(4 * 1024 * 1024) as disk:
                result = await _run_chaos(rig, disk, seed)
                await rig.close()
                files = sorted(disk.path.glob("show*.mkv"), key=lambda p: p.stat().st_mtime_ns)
                result.recordings = [received(p) for p in files]
                return result
        finally:
            await rig.close()

    result = asyncio.run(run())
    result.sessions = {
        name: [received(path) for path in server.sessions] for name, server in rig.platforms.items()
    }
    yield result


def witness_evidence(chaos: Chaos) -> dict[str, Any]:
    """The witnesses' streams, asserted whole: one session each, no hole, the full length."""
    facts: dict[str, Any] = {}
    for name in WITNESSES:
        sessions = chaos.sessions[name]
        assert len(sessions) == 1, f"witness {name} reconnected (seed {chaos.seed}): {sessions}"
        got = sessions[0]
        assert got.max_gap_s < NO_GAP_S, f"witness {name} has a hole: {got} (seed {chaos.seed})"
        assert got.seconds == pytest.approx(CLIP_S, abs=1.5), got
        starts = [e for e in chaos.rig.process(f"target:{name}") if e["new"] == "starting"]
        assert len(starts) == 1, starts
        facts[name] = got.summary()
    return facts


def recovered(chaos: Chaos, name: str, *, after: str, min_seconds: float) -> Received:
    """The last session a fault target's server received: whole, from a keyframe."""
    sessions = chaos.sessions[name]
    assert sessions, f"{name}'s server received nothing"
    last = sessions[-1]
    assert last.starts_at_keyframe, last
    assert last.max_gap_s < NO_GAP_S, last
    assert last.seconds >= min_seconds, f"{name} did not stream again after {after}: {sessions}"
    return last


def told(chaos: Chaos, source: str, since: float, *words: str) -> dict[str, Any]:
    """The error event about ``source`` after ``since`` whose message has one of ``words``."""
    errors = [e for e in chaos.rig.errors(source) if e["at"] >= since]
    found = [e for e in errors if any(w.lower() in e["message"].lower() for w in words)]
    assert found, f"no error event for {source} saying {words}: {errors}"
    assert found[0]["hint"], found[0]
    return found[0]


class TestNetworkFaults:
    def test_the_witnesses_receive_the_whole_stream_through_every_fault(
        self, chaos: Chaos, record: CaseRecord
    ) -> None:
        record.case("fault", "all faults at once: the untouched targets")
        facts = witness_evidence(chaos)
        record.evidence(witnesses=facts, faults=sorted(chaos.marks), seed=chaos.seed)

    def test_a_server_refusing_connections_is_retried_until_it_accepts(
        self, chaos: Chaos, record: CaseRecord
    ) -> None:
        record.case("fault", "target server refuses connections")
        backoffs = [e for e in chaos.rig.process("target:refused") if e["new"] == "backoff"]
        assert len(backoffs) >= 3 and "Connection refused" in backoffs[0]["reason"], backoffs
        delays = [e["retry_in"] for e in backoffs]
        assert delays[:3] == pytest.approx([0.5, 1.0, 2.0]), delays
        error = told(chaos, "target:refused", chaos.began - 5, "Connection refused")
        assert "not accepting connections" in error["hint"]
        back = chaos.flowing_after("refused", chaos.marks["accept refused"])
        assert back is not None and back <= BACKOFF_CAP_S + MARGIN_S, back
        last = recovered(chaos, "refused", after="accepting", min_seconds=CLIP_S - 8 - 6)
        record.evidence(
            error=error["message"], retries=len(backoffs), back_after_s=round(back, 2),
            received=last.summary(), witnesses=witness_evidence(chaos),
        )  # fmt: skip

    def test_a_connection_reset_mid_stream_reconnects_from_a_keyframe(
        self, chaos: Chaos, record: CaseRecord
    ) -> None:
        record.case("fault", "target server resets the connection mid-stream")
        since = chaos.marks["reset"]
        failures = [
            e
            for e in chaos.rig.process("target:reset")
            if e["new"] == "backoff" and e["at"] > since
        ]
        assert failures, chaos.rig.process("target:reset")
        error = told(chaos, "target:reset", since, "reset", "broken pipe", "end of file", "i/o")
        back = chaos.flowing_after("reset", since)
        assert back is not None and back <= 0.5 + MARGIN_S, back  # the first retry: 0.5 s
        sessions = chaos.sessions["reset"]
        assert len(sessions) >= 2, sessions
        assert sessions[0].seconds >= AT["reset"] - 2.0, sessions[0]
        last = recovered(chaos, "reset", after="the reset", min_seconds=CLIP_S - AT["reset"] - 5)
        record.evidence(
            error=error["message"], back_after_s=round(back, 2),
            before=sessions[0].summary(), after=last.summary(),
            witnesses=witness_evidence(chaos),
        )  # fmt: skip

    def test_a_server_that_stops_reading_is_cut_off_and_the_target_reconnects(
        self, chaos: Chaos, record: CaseRecord
    ) -> None:
        record.case("fault", "target server stalls (accepts, never reads)")
        since = chaos.marks["stall"]
        failures = [
            e
            for e in chaos.rig.process("target:stall")
            if e["new"] == "backoff" and e["at"] > since
        ]
        assert failures, chaos.rig.process("target:stall")
        reason = failures[0]["reason"]
        assert "behind" in reason, reason
        detected = chaos.after("stall", failures[0])
        assert detected <= 12.0, detected  # ~1 MB of backlog at 1.5 Mbit/s, and a margin
        told(chaos, "target:stall", since, "behind")
        last = recovered(chaos, "stall", after="the stall", min_seconds=CLIP_S - detected - 4)
        record.evidence(
            reason=reason, detected_after_s=round(detected, 2), after=last.summary(),
            witnesses=witness_evidence(chaos),
        )  # fmt: skip

    def test_a_server_that_vanishes_is_retried_and_streams_again_when_back(
        self, chaos: Chaos, record: CaseRecord
    ) -> None:
        record.case("fault", "target server disappears mid-stream and returns")
        gone, back_at = chaos.marks["vanish"], chaos.marks["vanish returns"]
        outage = [
            e for e in chaos.rig.process("target:vanish")
            if e["new"] == "backoff" and gone < e["at"] < back_at
        ]  # fmt: skip
        assert len(outage) >= 2, chaos.rig.process("target:vanish")
        assert "retrying" in chaos.rig.target_states("vanish")
        error = told(chaos, "target:vanish", gone, "refused", "reset", "end of file", "i/o")
        back = chaos.flowing_after("vanish", back_at)
        assert back is not None and back <= BACKOFF_CAP_S + MARGIN_S, back
        last = recovered(chaos, "vanish", after="its return", min_seconds=CLIP_S - 10 - 7)
        record.evidence(
            error=error["message"], retries_during_outage=len(outage),
            back_after_s=round(back, 2), after=last.summary(),
            witnesses=witness_evidence(chaos),
        )  # fmt: skip


class TestKilledChildren:
    def test_targets_sigkilled_at_random_moments_come_back_from_a_keyframe(
        self, chaos: Chaos, record: CaseRecord
    ) -> None:
        record.case("fault", "target FFmpeg SIGKILLed at random moments")
        kills = [(at, child) for at, child in chaos.kills if child.startswith("target:")]
        assert len(kills) >= 3, f"too few kills landed (seed {chaos.seed}): {kills}"
        recoveries = []
        for at, child in kills:
            name = child.removeprefix("target:")
            died = [
                e for e in chaos.rig.process(child)
                if e["new"] == "backoff" and e["at"] >= at and "signal 9" in e["reason"]
            ]  # fmt: skip
            assert died, (child, chaos.rig.process(child))
            back = chaos.flowing_after(name, at)
            assert back is not None and back <= BACKOFF_CAP_S + MARGIN_S, (child, back)
            recoveries.append(round(back, 2))
        for victim in VICTIMS:
            landed = sum(1 for _, child in kills if child == f"target:{victim}")
            sessions = chaos.sessions[victim]
            assert len(sessions) == landed + 1, (victim, sessions)
            for got in sessions:
                assert got.starts_at_keyframe and got.max_gap_s < NO_GAP_S, got
        record.evidence(
            seed=chaos.seed, kills=len(kills), back_after_s=recoveries,
            sessions={v: [s.summary() for s in chaos.sessions[v]] for v in VICTIMS},
            witnesses=witness_evidence(chaos),
        )  # fmt: skip

    def test_a_crashed_encoder_restarts_its_group_and_touches_no_other(
        self, chaos: Chaos, record: CaseRecord
    ) -> None:
        record.case("fault", "the encoder of a re-encode group crashes (SIGKILL)")
        since = chaos.marks["kill encoder"]
        died = [e for e in chaos.rig.process("encoder:small") if e["new"] == "backoff"]
        assert died and "signal 9" in died[0]["reason"], chaos.rig.process("encoder:small")
        states = [
            e["state"] for e in chaos.rig.dicts("group.state")
            if e["group"] == "small" and e["at"] >= since
        ]  # fmt: skip
        assert "degraded" in states and states.index("live", states.index("degraded")), states
        delta = chaos.sessions["delta"]
        assert len(delta) == 2, delta
        assert delta[0].seconds >= AT["kill encoder"] - 2.5, delta[0]
        last = recovered(chaos, "delta", after="the encoder restart", min_seconds=8.0)
        assert (last.width, last.height) == (320, 180), last
        back = chaos.flowing_after("delta", since)
        assert back is not None
        record.evidence(
            reason=died[0]["reason"], group_states=states, back_after_s=round(back, 2),
            before=delta[0].summary(), after=last.summary(), witnesses=witness_evidence(chaos),
        )  # fmt: skip


class TestDiskFull:
    def test_a_full_disk_stops_the_recording_with_a_clear_error_and_it_resumes_when_freed(
        self, chaos: Chaos, record: CaseRecord
    ) -> None:
        record.case("fault", "the disk fills up under a recording target")
        error = told(chaos, "target:disk", chaos.began - 5, "No space left")
        assert "free space" in error["hint"], error
        assert "retrying" in chaos.rig.target_states("disk")
        files = chaos.recordings
        assert len(files) >= 2, files
        first = files[0]
        # What was recorded before the disk filled is still there and readable.
        assert first.packets and first.seconds >= 1.5 and first.max_gap_s < NO_GAP_S, first
        freed = chaos.marks["free disk"]
        back = chaos.flowing_after("disk", freed)
        assert back is not None and back <= BACKOFF_CAP_S + MARGIN_S, back
        last = files[-1]
        assert last.starts_at_keyframe and last.max_gap_s < NO_GAP_S, last
        assert last.seconds >= CLIP_S - AT["free disk"] - 7.0, files
        record.evidence(
            error=error["message"], hint=error["hint"], kept_before_full=first.summary(),
            back_after_s=round(back, 2), after_freeing=last.summary(), files=len(files),
            witnesses=witness_evidence(chaos),
        )  # fmt: skip


# -- the publisher flapping ---------------------------------------------------------------------

FLAPS = 7
FLAP_S = 3.0


@dataclass
class Flapping:
    rig: RelayRig
    relisten_s: list[float]
    endings: list[str]
    ingest_killed_at: float
    children_after: int


async def _run_flapping(rig: RelayRig) -> Flapping:
    await rig.platform("alpha")
    await rig.platform("gamma")
    relay = await rig.start(
        [
            Group(id="main", targets=[rig.target("alpha")]),
            Group(id="show", targets=[rig.target("gamma")]),
        ]
    )
    await relay.start_group("main")
    await relay.arm_group("show")
    port = relay.profile.ingest.port
    relisten: list[float] = []
    endings: list[str] = []
    killed_at = 0.0
    for session in range(FLAPS):
        ending = ("clean", "abrupt", "ingest killed")[session % 3]
        publisher = rig.publisher(seconds=FLAP_S if ending == "clean" else None)
        await publisher.start()
        if ending != "clean":  # cut it short only once both outputs are sending
            await rig.wait_for(lambda: all(p.connected for p in rig.platforms.values()), 15)
        if ending == "clean":
            await publisher.wait()
        else:
            await asyncio.sleep(1.0)
            if ending == "abrupt":
                await publisher.stop()  # OBS's connection drops
            else:
                pid = rig.pid_of("ingest")
                assert pid is not None
                killed_at = time.time()
                os.kill(pid, signal.SIGKILL)
                await publisher.wait()
        ended = rig.loop_time
        await wait_listening(port, timeout=10)
        relisten.append(rig.loop_time - ended)
        endings.append(ending)
        # OBS reconnects at once: the next publish follows without a pause.
    await rig.wait_for(lambda: rig.target_state("alpha") == "waiting", 15)
    await rig.wait_for(lambda: rig.target_state("gamma") == "waiting", 15)
    await rig.wait_for(lambda: relay.groups["show"].state == "armed", 15)
    assert is_listening(port)
    children = len(psutil.Process().children())
    await relay.stop()
    return Flapping(rig, relisten, endings, killed_at, children)


@pytest.fixture(scope="module")
def flapping(
    ffmpeg_exe: str, relay_clip: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flapping]:
    rig = RelayRig(ffmpeg_exe, relay_clip, tmp_path_factory.mktemp("flapping"))

    async def run() -> Flapping:
        try:
            result = await _run_flapping(rig)
            for server in rig.platforms.values():
                await server.wait_sessions(FLAPS, timeout=15)
            return result
        finally:
            await rig.close()

    yield asyncio.run(run())


class TestPublisherFlapping:
    def test_every_reconnect_reaches_every_target_from_a_keyframe(
        self, flapping: Flapping, record: CaseRecord
    ) -> None:
        record.case("fault", f"OBS disconnects and reconnects {FLAPS} times in a row")
        rig = flapping.rig
        assert rig.relay is not None and rig.relay.ingest.sessions == FLAPS
        facts = {}
        for name in ("alpha", "gamma"):
            sessions = [received(p) for p in rig.platforms[name].sessions]
            assert len(sessions) == FLAPS, (name, sessions)
            for got in sessions:
                assert got.starts_at_keyframe and got.max_gap_s < NO_GAP_S, (name, got)
                assert got.seconds >= 0.5, (name, got)
            facts[name] = [round(s.seconds, 2) for s in sessions]
        states = [e["state"] for e in rig.dicts("ingest.state")]
        assert states.count("receiving") == FLAPS, states
        for name in ("target:alpha", "target:gamma"):
            assert "fatal" not in [e["new"] for e in rig.process(name)]
        assert max(flapping.relisten_s) <= 2.0, flapping.relisten_s
        record.evidence(
            endings=flapping.endings, seconds_received=facts,
            relisten_max_s=round(max(flapping.relisten_s), 3),
        )  # fmt: skip

    def test_a_sigkilled_ingest_says_so_and_listens_again_for_obs(
        self, flapping: Flapping, record: CaseRecord
    ) -> None:
        record.case("fault", "the ingest FFmpeg SIGKILLed while receiving")
        rig = flapping.rig
        killed = [
            e for e in rig.dicts("ingest.state")
            if e["at"] >= flapping.ingest_killed_at and e["state"] == "failed"
        ]  # fmt: skip
        assert killed and "signal 9" in killed[0]["reason"], rig.dicts("ingest.state")
        after = [e["state"] for e in rig.dicts("ingest.state") if e["at"] >= killed[0]["at"]]
        assert after[:2] == ["failed", "listening"], after
        # The outputs ended their streams cleanly with the source; none failed.
        assert "failed" not in rig.target_states("alpha")
        assert flapping.children_after >= 1  # the ingest listens; no output left running
        record.evidence(ingest_states_after_kill=after[:3], reason=killed[0]["reason"])


# -- the agent killed ---------------------------------------------------------------------------

TOKEN = "reliability-agent-kill-token-0123"


def _descendants(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.NoSuchProcess):
        return list(psutil.Process(pid).children(recursive=True))
    return []


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


async def _until(check: Any, timeout: float, what: str) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if loop.time() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.1)


async def test_an_agent_killed_while_live_leaves_nothing_behind_and_comes_back_armed(
    ffmpeg_exe: str, relay_clip: Path, tmp_path: Path, record: CaseRecord
) -> None:
    record.case("fault", "the agent SIGKILLed while live, then started again")
    platforms = {
        n: FakePlatform(ffmpeg_exe, tmp_path / n, key=f"{n}-key") for n in ("alpha", "beta")
    }
    for server in platforms.values():
        await server.start()
    config = tmp_path / "config"
    port = free_port()
    store = ProfileStore(config)
    store.save(
        Profile(
            name="studio",
            ingest=IngestSettings(port=port),
            groups=[
                Group(
                    id="show",
                    armed=True,
                    targets=[Target(id=n, url=f"{s.url}/{s.key}") for n, s in platforms.items()],
                )
            ],
        )
    )
    store.use("studio")
    profile_file = store.path_of("studio")
    saved = {p.name: p.read_bytes() for p in (profile_file, config / "state.json")}
    url = f"rtmp://127.0.0.1:{port}/live/obs"
    first = Publisher(ffmpeg_exe, relay_clip, url)
    second = Publisher(ffmpeg_exe, relay_clip, url, seconds=5)
    agent = AgentProcess(config, token=TOKEN)
    again = AgentProcess(config, token=TOKEN)
    try:
        agent.start()
        assert agent.proc is not None
        await wait_listening(port)
        await first.start()

        def live() -> bool:
            status = agent.client().get("/api/v1/status")
            return bool(status["totals"]["targets_live"] == 2)

        await _until(live, 20, "the armed group did not go live")
        await asyncio.sleep(2.0)
        children = _descendants(agent.proc.pid)
        assert len(children) >= 3, [c.cmdline() for c in children]  # ingest + two targets
        killed_at = time.monotonic()
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait()
        agent.proc = None
        _, left = await asyncio.to_thread(psutil.wait_procs, children, 5)
        left = [p for p in left if _alive(p)]
        assert not left, [p.cmdline() for p in left]
        gone_after = time.monotonic() - killed_at
        await first.wait(timeout=20)  # OBS's connection dropped with the agent
        for server in platforms.values():
            await server.wait_sessions(1)
        assert {p.name: p.read_bytes() for p in (profile_file, config / "state.json")} == saved

        again.start()  # the stale single-instance lock does not block the restart
        status = again.client().get("/api/v1/status")
        group = status["groups"][0]
        assert (status["profile"], group["id"], group["armed"]) == ("studio", "show", True)
        await wait_listening(port)
        await second.start()
        assert again.proc is not None

        def live_again() -> bool:
            return bool(again.client().get("/api/v1/status")["totals"]["targets_live"] == 2)

        await _until(live_again, 20, "the armed group did not come back")
        await second.wait(timeout=30)
        for server in platforms.values():
            await server.wait_sessions(2)
        assert again.stop() == 0, again.stderr_tail()
    finally:
        for process in (first, second):
            await process.stop()
        agent.kill()
        again.kill()
        for server in platforms.values():
            await server.stop()

    facts: dict[str, Any] = {"children_gone_after_s": round(gone_after, 2)}
    for name, server in platforms.items():
        before, after = (received(p) for p in server.sessions[:2])
        assert before.max_gap_s < NO_GAP_S and before.seconds >= 2.0, before
        assert after.starts_at_keyframe and after.max_gap_s < NO_GAP_S, after
        assert after.seconds == pytest.approx(5.0, abs=1.5), after
        facts[name] = {"before_kill": before.summary(), "after_restart": after.summary()}
    assert {p.name: p.read_bytes() for p in (profile_file, config / "state.json")} == saved
    record.evidence(**facts, profile="byte for byte as saved", orphans=0)
