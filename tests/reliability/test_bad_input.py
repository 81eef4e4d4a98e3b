"""Bad input tried: hostile API requests to a live agent, stream keys full of special
characters, damaged and enormous profile files, FFmpeg binaries that print garbage or
nothing, a publisher with another codec, and one that changes resolution mid-stream.

Each gets a clear error or is handled, nothing already saved is lost, and what is live
carries on: the hostile requests are sent while a target streams, and that target's
recording must have no hole in it.

The hostile requests reuse the lists the API's in-process tests keep
(``tests/api/test_fuzz.py``'s ``HOSTILE``, ``tests/api/test_routes.py``'s ``INVALID`` and
``BAD_BODIES``) and add hostile ids and URLs; here they go to a real ``cascade run`` while
it relays.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest

from agent.core.model import (
    AudioSettings,
    Group,
    GroupMode,
    IngestSettings,
    Profile,
    Target,
    VideoSettings,
)
from agent.media.flv import FlvParser, TagKind
from agent.store.profiles import ProfileStore
from tests.agent_process import AgentProcess
from tests.api.test_fuzz import HOSTILE
from tests.api.test_routes import BAD_BODIES, INVALID
from tests.keyring_session import SecretServiceSession
from tests.media.flv_samples import ffmpeg_flv
from tests.reliability.conftest import CaseRecord
from tests.reliability.harness import (
    NO_GAP_S,
    FaultProxy,
    RelayRig,
    frame_sizes,
    received,
    received_flv,
)
from tests.streams import FakePlatform, Publisher, free_port, wait_listening

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

TOKEN = "reliability-bad-input-token-4567"
#: Keys as platforms and people make them: a query a platform adds, shell and URL
#: metacharacters, percent signs, quotes, non-ASCII letters and an emoji.
SPECIAL_KEYS = {
    "k1": "live_123456789_AbCdEfGh?bandwidthtest=true&x=1",
    "k2": "a#b%20c%2F/d\\e'\"$(id)`;|&<>*",
    "k3": "ключ-ünï-çødé-流-🎥",
    "k4": "sk=abc:def@ghi;j,k+l~m!n(p)[q]{r}",
}
#: Keys the API must refuse (with 422), leaving the stored key as it was.
REFUSED_KEYS = {
    "with-a-space": "live key",
    "with-a-newline": "live\nkey",
    "with-a-nul": "live\x00key",
    "too-long": "k" * 5000,
    "only-blanks": "   ",
}


@dataclass(frozen=True)
class Hostile:
    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]
    expect: frozenset[int]
    name: str


def _hostile_requests() -> list[Hostile]:
    requests: list[Hostile] = []
    for param in HOSTILE:
        method, path, body, headers, status, _ = cast(
            tuple[str, str, str | bytes | None, dict[str, str], int, object], param.values
        )
        raw = body.encode() if isinstance(body, str) else body
        requests.append(
            Hostile(method, path, raw, dict(headers), frozenset({status}), f"fuzz:{param.id}")
        )
    for param in INVALID:
        method, path, spec, _ = cast(tuple[str, str, object, str], param.values)
        raw = json.dumps(spec).encode()
        requests.append(
            Hostile(method, f"/api/v1/{path}", raw, {}, frozenset({422}), f"invalid:{param.id}")
        )
    for param in BAD_BODIES:
        raw, _ = cast(tuple[bytes, str], param.values)
        requests.append(
            Hostile("PATCH", "/api/v1/groups/main", raw, {}, frozenset({400}), f"body:{param.id}")
        )
    long_id = "a" * 5000
    odd_ids = {
        "traversal": "..%2F..%2Fetc%2Fpasswd",
        "nul": "%00",
        "long": long_id,
        "unicode": "%F0%9F%8E%A5",
        "dots": "..",
        "percent": "%25",
    }
    for name, ident in odd_ids.items():
        for method, path in (
            ("GET", f"/api/v1/targets/{ident}"),
            ("POST", f"/api/v1/targets/{ident}/toggle"),
            ("POST", f"/api/v1/groups/{ident}/start"),
            ("DELETE", f"/api/v1/groups/{ident}"),
            ("POST", f"/api/v1/profiles/{ident}/activate"),
        ):
            requests.append(
                Hostile(method, path, None, {}, frozenset({404}), f"id:{name}:{method} {path[:40]}")
            )
    urls = {
        "file": "file:///etc/passwd",
        "argv-injection": "rtmp://127.0.0.1/live -f lavfi -i anullsrc",
        "concat-protocol": "concat:rtmp://a/b|rtmp://c/d",
        "subfile-protocol": "subfile,,start,0,end,0,,:/etc/passwd",
        "http": "http://127.0.0.1/live",
        "no-host": "rtmp:///live",
        "newline": "rtmp://127.0.0.1/live\n-i /etc/passwd",
        "nul": "rtmp://127.0.0.1/li\u0000ve",
        "pipe": "pipe:1",
        "option-like": "-y",
    }
    for name, url in urls.items():
        body = json.dumps({"id": "evil", "platform": "custom", "url": url}).encode()
        requests.append(
            Hostile(
                "POST", "/api/v1/groups/main/targets", body, {}, frozenset({422}), f"url:{name}"
            )
        )
        patch = json.dumps({"url": url}).encode()
        requests.append(
            Hostile("PATCH", "/api/v1/targets/spare", patch, {}, frozenset({422}), f"url:{name}")
        )
    wrong = {
        "id-list": {"id": ["main"]},
        "id-object": {"id": {"$ne": 1}},
        "id-number": {"id": 7},
        "mode-number": {"id": "x", "mode": 1},
        "video-string": {"id": "x", "mode": "reencode", "video": "1080p"},
        "width-huge": {"id": "x", "mode": "reencode", "video": {"width": 10**30}},
        "width-float": {"id": "x", "mode": "reencode", "video": {"width": 1280.5}},
        "armed-string": {"id": "x", "armed": "yes"},
    }
    for name, body_obj in wrong.items():
        requests.append(
            Hostile(
                "POST",
                "/api/v1/groups",
                json.dumps(body_obj).encode(),
                {},
                frozenset({422}),
                f"type:{name}",
            )
        )
    requests.append(
        Hostile(
            "POST",
            "/api/v1/groups/main/targets",
            json.dumps({"id": "big", "url": "rtmp://h/" + "a" * 70000}).encode(),
            {},
            frozenset({413}),
            "url:enormous",
        )
    )
    return requests


@dataclass
class LiveSession:
    agent_log: str
    answers: list[tuple[Hostile, int, dict[str, Any]]] = field(default_factory=list)
    refused_keys: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    profile_before: bytes = b""
    profile_after: bytes = b""
    view_before: dict[str, Any] = field(default_factory=dict)
    view_after: dict[str, Any] = field(default_factory=dict)
    site: list[Path] = field(default_factory=list)
    keyed: dict[str, list[Path]] = field(default_factory=dict)
    sent: dict[str, list[bytes]] = field(default_factory=dict)
    platform_logs: dict[str, str] = field(default_factory=dict)
    has_key_after: dict[str, bool] = field(default_factory=dict)


async def _live_session(
    ffmpeg: str, clip: Path, folder: Path, secret_service: SecretServiceSession
) -> LiveSession:
    site = FakePlatform(ffmpeg, folder / "site", key="site-key")
    servers = {name: FakePlatform(ffmpeg, folder / name, key="expected") for name in SPECIAL_KEYS}
    proxies: dict[str, FaultProxy] = {}
    await site.start()
    for name, server in servers.items():
        await server.start()
        proxies[name] = FaultProxy(server.port)
        await proxies[name].listen()
    config = folder / "config"
    port = free_port()
    store = ProfileStore(config)
    targets = [Target(id="site", url=f"{site.url}/{site.key}")]
    targets += [Target(id=name, url=proxy.url("live")) for name, proxy in proxies.items()]
    targets.append(Target(id="spare", url="rtmp://127.0.0.1:1/live", enabled=False))
    hd = Group(
        id="hd",
        mode=GroupMode.REENCODE,
        video=VideoSettings(width=320, height=180, bitrate_kbps=300, preset="ultrafast"),
        audio=AudioSettings(),
        targets=[Target(id="hd-site", url="rtmp://127.0.0.1:1/hd", enabled=False)],
    )
    store.save(
        Profile(
            name="studio",
            ingest=IngestSettings(port=port),
            groups=[Group(id="main", targets=targets), hd],
        )
    )
    store.use("studio")
    agent = AgentProcess(
        config, token=TOKEN, env={"DBUS_SESSION_BUS_ADDRESS": secret_service.address}
    )
    agent.env.pop("PYTHON_KEYRING_BACKEND", None)
    publisher = Publisher(ffmpeg, clip, f"rtmp://127.0.0.1:{port}/live/obs", seconds=10)
    session = LiveSession(agent_log="")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    base = agent.url
    try:
        agent.start()
        # A fresh connection per request: an answer that ends its connection early (413)
        # must not spoil the next request.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(headers=headers, connector=connector) as http:

            async def call(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
                async with http.request(method, f"{base}{path}", **kwargs) as answer:
                    text = await answer.text()
                    return answer.status, (json.loads(text) if text else None)

            for name, key in SPECIAL_KEYS.items():
                status, body = await call("PUT", f"/api/v1/targets/{name}/key", json={"key": key})
                assert status == 204, (name, status, body)
            session.profile_before = store.path_of("studio").read_bytes()
            _, session.view_before = await call("GET", "/api/v1/profile")
            await wait_listening(port)
            await publisher.start()
            status, body = await call("POST", "/api/v1/groups/main/start")
            assert status == 200, body

            async def all_live() -> bool:
                _, status_body = await call("GET", "/api/v1/status")
                return bool(status_body["totals"]["targets_live"] == 1 + len(SPECIAL_KEYS))

            deadline = time.monotonic() + 20
            while not await all_live():
                assert time.monotonic() < deadline, agent.stderr_tail()
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)

            for hostile in _hostile_requests():
                status, body = await call(
                    hostile.method,
                    hostile.path,
                    data=hostile.body,
                    headers={"Content-Type": "application/json", **hostile.headers},
                )
                session.answers.append((hostile, status, body or {}))
            for name, key in REFUSED_KEYS.items():
                session.refused_keys[name] = await call(
                    "PUT", "/api/v1/targets/k1/key", json={"key": key}
                )
            for name in SPECIAL_KEYS:
                _, view = await call("GET", f"/api/v1/targets/{name}")
                session.has_key_after[name] = bool(view["has_key"])
            _, session.view_after = await call("GET", "/api/v1/profile")
            session.profile_after = store.path_of("studio").read_bytes()
            await publisher.wait(timeout=40)
        await site.wait_sessions(1)
        for server in servers.values():
            await server.wait_sessions(1)
        assert agent.stop() == 0, agent.stderr_tail()
    finally:
        session.agent_log = agent.stderr_tail(200_000)
        await publisher.stop()
        agent.kill()
        for proxy in proxies.values():
            await proxy.close()
        for server in (site, *servers.values()):
            await server.stop()
    session.site = list(site.sessions)
    session.keyed = {name: list(s.sessions) for name, s in servers.items()}
    session.sent = {name: p.sent for name, p in proxies.items()}
    session.platform_logs = {name: "\n".join(s.logs) for name, s in servers.items()}
    return session


@pytest.fixture(scope="module")
def live_session(
    ffmpeg_exe: str, relay_clip: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveSession]:
    with SecretServiceSession() as secret_service:
        folder = tmp_path_factory.mktemp("live-bad-input")
        yield asyncio.run(_live_session(ffmpeg_exe, relay_clip, folder, secret_service))


class TestHostileRequests:
    def test_hostile_requests_to_a_live_agent_get_clear_errors_and_change_nothing(
        self, live_session: LiveSession, record: CaseRecord
    ) -> None:
        record.case("bad input", "hostile API bodies, ids and URLs while live")
        wrong = []
        by_status: dict[int, int] = {}
        for hostile, status, body in live_session.answers:
            by_status[status] = by_status.get(status, 0) + 1
            error = body.get("error", {}) if isinstance(body, dict) else {}
            if status not in hostile.expect or not error.get("message") or not error.get("code"):
                wrong.append((hostile.name, hostile.method, hostile.path[:60], status, body))
        assert not wrong, "\n".join(map(str, wrong))
        assert live_session.profile_after == live_session.profile_before
        assert live_session.view_after == live_session.view_before
        assert "Traceback" not in live_session.agent_log
        site = [received(p) for p in live_session.site]
        assert len(site) == 1, site
        assert site[0].max_gap_s < NO_GAP_S and site[0].seconds >= 8.0, site
        record.evidence(
            tried=len(live_session.answers),
            answers={str(k): v for k, v in sorted(by_status.items())},
            server_errors=0,
            profile="unchanged (file and API view)",
            live_target=site[0].summary(),
        )


class TestStreamKeys:
    def test_keys_full_of_special_characters_reach_the_server_intact(
        self, live_session: LiveSession, record: CaseRecord
    ) -> None:
        record.case("bad input", "stream keys full of special characters")
        facts = {}
        for name, key in SPECIAL_KEYS.items():
            first = live_session.sent[name][0]
            # FFmpeg sends the key in its releaseStream, FCPublish and publish commands.
            assert first.count(key.encode()) >= 2, (name, first[:600])
            echoed = re.findall(
                r"Unexpected stream (.*), expecting expected", live_session.platform_logs[name]
            )
            assert echoed and echoed[0] == key, (name, echoed)
            got = received(live_session.keyed[name][0])
            assert got.max_gap_s < NO_GAP_S and got.seconds >= 8.0, got
            facts[name] = {"key_chars": len(key), "received": got.summary()}
        record.evidence(**facts)

    def test_refused_keys_leave_the_stored_key_in_place(
        self, live_session: LiveSession, record: CaseRecord
    ) -> None:
        record.case(
            "bad input", "stream keys the API must refuse (space, newline, NUL, 5000 chars)"
        )
        for name, (status, body) in live_session.refused_keys.items():
            assert status == 422, (name, status, body)
            assert body["error"]["field"] == "key" and body["error"]["message"], body
            assert (
                REFUSED_KEYS[name].strip() not in json.dumps(body) or not REFUSED_KEYS[name].strip()
            )
        assert all(live_session.has_key_after.values()), live_session.has_key_after
        # k1 streamed with its stored key all along (it was the one the refused keys aimed at).
        assert live_session.sent["k1"][0].count(SPECIAL_KEYS["k1"].encode()) >= 2
        record.evidence(
            refused=sorted(live_session.refused_keys),
            stored_key_kept=True,
        )


# -- damaged profile files ------------------------------------------------------------------------


def _sparse(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        fh.write(b'{"schema_version": 1, "groups": [')
        fh.truncate(size)


DAMAGE: dict[str, Callable[[Path], object]] = {
    "enormous": lambda p: _sparse(p, 60 * 1024 * 1024),
    "wrong-types": lambda p: p.write_text(
        json.dumps({"schema_version": 1, "ingest": {"port": "1935"}, "groups": "main"})
    ),
    "binary": lambda p: p.write_bytes(os.urandom(4096)),
}


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_an_agent_starts_from_the_backup_of_a_damaged_profile_and_keeps_the_damaged_file(
    tmp_path: Path, damage: str, record: CaseRecord
) -> None:
    record.case("bad input", f"profile file: {damage}, with a backup")
    config = tmp_path / "config"
    store = ProfileStore(config)
    good = Profile(
        name="studio",
        ingest=IngestSettings(port=free_port()),
        groups=[Group(id="show", targets=[Target(id="site", url="rtmp://127.0.0.1:1/live/k")])],
    )
    store.save(good)
    store.save(good)  # the second save keeps the first as the backup
    store.use("studio")
    path = store.path_of("studio")
    DAMAGE[damage](path)
    size, digest = path.stat().st_size, _digest(path)

    with AgentProcess(config, token=TOKEN) as agent:
        started = time.monotonic()
        status = agent.client().get("/api/v1/status")
        log = agent.stderr_tail(20_000)
    assert [g["id"] for g in status["groups"]] == ["show"], status
    assert status["groups"][0]["targets"][0]["id"] == "site"
    kept = [p for p in path.parent.iterdir() if ".corrupt-" in p.name]
    assert len(kept) == 1 and kept[0].stat().st_size == size and _digest(kept[0]) == digest
    assert "was damaged" in log and "backup" in log, log
    said = next(line for line in log.splitlines() if "was damaged" in line)
    record.evidence(
        outcome="started from the backup; damaged file kept aside unchanged",
        message=said.split(": ", 2)[-1][:200],
        answered_in_s=round(time.monotonic() - started, 2),
    )


def test_an_agent_whose_only_profile_has_wrong_types_starts_on_a_default_one(
    tmp_path: Path, record: CaseRecord
) -> None:
    record.case("bad input", "profile file: wrong types, no backup")
    config = tmp_path / "config"
    store = ProfileStore(config)
    store.save(Profile(name="studio", ingest=IngestSettings(port=free_port())))
    store.use("studio")
    path = store.path_of("studio")
    (path.parent / (path.name + ".bak")).unlink(missing_ok=True)
    DAMAGE["wrong-types"](path)
    damaged = path.read_bytes()
    with AgentProcess(config, token=TOKEN) as agent:
        status = agent.client().get("/api/v1/status")
        log = agent.stderr_tail(20_000)
    assert status["profile"] == "studio" and status["problem"] == "", status
    kept = [p for p in path.parent.iterdir() if ".corrupt-" in p.name]
    assert len(kept) == 1 and kept[0].read_bytes() == damaged
    said = next(line for line in log.splitlines() if "was damaged" in line)
    assert "expected" in said, said  # it names the field and the type it expected
    record.evidence(outcome="default profile; damaged file kept aside", message=said[-200:])


# -- FFmpeg that prints garbage or nothing --------------------------------------------------------

FAKE_FFMPEG = {
    "garbage": "#!/bin/sh\nhead -c 4096 /dev/urandom\necho\nexit 0\n",
    "nothing": "#!/bin/sh\nexit 0\n",
}


@pytest.mark.parametrize("kind", list(FAKE_FFMPEG))
def test_an_ffmpeg_that_prints_garbage_or_nothing_is_refused_with_what_to_do(
    tmp_path: Path, kind: str, record: CaseRecord
) -> None:
    record.case("bad input", f"an FFmpeg that prints {kind}")
    fake = tmp_path / "ffmpeg"
    fake.write_text(FAKE_FFMPEG[kind])
    fake.chmod(0o755)
    config = tmp_path / "config"
    store = ProfileStore(config)
    store.save(
        Profile(
            name="studio",
            ingest=IngestSettings(port=free_port()),
            groups=[Group(id="show", targets=[Target(id="site", url="rtmp://127.0.0.1:1/l/k")])],
        )
    )
    store.use("studio")
    before = store.path_of("studio").read_bytes()
    with AgentProcess(config, token=TOKEN, env={"CASCADE_FFMPEG": str(fake)}) as agent:
        client = agent.client()
        deadline = time.monotonic() + 30
        while not (status := client.get("/api/v1/status"))["problem"]:
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        from agent.errors import CascadeError

        with pytest.raises(CascadeError) as refused:
            client.post("/api/v1/groups/show/start")
    assert "CASCADE_FFMPEG" in status["problem"] or str(fake) in status["problem"], status
    said = str(refused.value)
    assert "FFmpeg is not available" in said and "CASCADE_FFMPEG" in said, said  # what to do
    assert store.path_of("studio").read_bytes() == before
    record.evidence(problem=status["problem"][:200], start_refused=said[:200])


async def test_an_ingest_ffmpeg_writing_garbage_fails_at_once_and_listens_again(
    ffmpeg_exe: str, relay_clip: Path, tmp_path: Path, record: CaseRecord
) -> None:
    record.case("bad input", "an FFmpeg whose output is garbage instead of FLV")
    wrapper = tmp_path / "ffmpeg"
    wrapper.write_text(
        "#!/bin/sh\n# The real FFmpeg, except a listener writes garbage where FLV belongs.\n"
        'for a in "$@"; do\n'
        '  [ "$a" = "-listen" ] && { head -c 200000 /dev/urandom; exec sleep 60; }\n'
        "done\n"
        f'exec "{ffmpeg_exe}" "$@"\n'
    )
    wrapper.chmod(0o755)
    rig = RelayRig(ffmpeg_exe, relay_clip, tmp_path)
    try:
        relay = await rig.start([Group(id="main")], ffmpeg=str(wrapper), wait_listening_=False)
        await relay.start_group("main")
        await rig.wait_for(
            lambda: len([e for e in rig.dicts("ingest.state") if e["state"] == "failed"]) >= 2, 15
        )
    finally:
        await rig.close()
    failed = [e for e in rig.dicts("ingest.state") if e["state"] == "failed"]
    assert "where an FLV header ('FLV') should start" in failed[0]["reason"], failed
    starts = [e for e in rig.process("ingest") if e["new"] == "starting"]
    took = failed[0]["at"] - starts[0]["at"]
    assert took < 5.0, took  # at once, not after the 10 s stall timeout
    states = [e["state"] for e in rig.dicts("ingest.state")]
    assert states[:4] == ["listening", "failed", "listening", "failed"], states
    delays = [e["retry_in"] for e in rig.process("ingest") if e["new"] == "backoff"]
    assert delays[1] > delays[0], delays  # retried with growing delays
    record.evidence(reason=failed[0]["reason"][:160], failed_after_s=round(took, 2))


# -- a publisher with another codec, or changing resolution mid-stream ---------------------------


def _splice(first: Path, second: Path, out: Path) -> Path:
    """``first`` then ``second`` as one FLV stream: the second's sequence headers arrive
    mid-stream with its new resolution, as an encoder reconfigured on the fly sends them."""

    def tags(path: Path) -> tuple[bytes, list[Any]]:
        data = path.read_bytes()
        return data[:13], FlvParser(source=str(path)).feed(data)

    header, head = tags(first)
    _, tail = tags(second)
    # Right after the first part's last video frame and last audio frame (30 fps, AAC).
    last_video = max(t.timestamp for t in head if t.kind is TagKind.VIDEO)
    last_audio = max(t.timestamp for t in head if t.kind is TagKind.AUDIO)
    offset = max(last_video + 33, last_audio + 22)
    body = bytearray(header)
    for tag in head:
        body += tag.raw
    for tag in tail:
        if tag.is_metadata:
            continue
        raw = bytearray(tag.raw)
        ts = tag.timestamp + offset
        raw[4:7] = (ts & 0xFFFFFF).to_bytes(3, "big")
        raw[7] = (ts >> 24) & 0xFF
        body += raw
    out.write_bytes(bytes(body))
    return out


def _clip(ffmpeg: str, path: Path, size: str, seconds: int, video: list[str]) -> Path:
    subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-f", "lavfi", "-i", f"testsrc2=s={size}:r=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", str(seconds), *video, "-g", "30", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "64k", "-f", "flv", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


@dataclass
class Codecs:
    rig: RelayRig
    hevc: dict[str, list[Path]]
    resized: dict[str, list[Path]]
    late_enabled_after_s: float


async def _run_codecs(rig: RelayRig, hevc: Path, resized: Path) -> Codecs:
    for name in ("alpha", "beta", "gamma"):
        await rig.platform(name)
    small = Group(
        id="small",
        mode=GroupMode.REENCODE,
        video=VideoSettings(
            width=320, height=180, fps=30, bitrate_kbps=300,
            keyframe_interval_s=1.0, preset="ultrafast",
        ),
        audio=AudioSettings(codec="aac", bitrate_kbps=64),
        targets=[rig.target("beta")],
    )  # fmt: skip
    main = Group(id="main", targets=[rig.target("alpha"), rig.target("gamma", enabled=False)])
    relay = await rig.start([main, small])
    await relay.start_all()
    first = rig.publisher(hevc)
    await first.start()
    await first.wait(timeout=30)
    for name in ("alpha", "beta"):
        await rig.platforms[name].wait_sessions(1)
    await wait_listening(relay.profile.ingest.port)
    second = rig.publisher(resized)
    await second.start()
    await asyncio.sleep(4.5)  # past the resolution change at 3 s
    await relay.enable_target("gamma")
    await second.wait(timeout=30)
    for name, count in (("alpha", 2), ("beta", 2), ("gamma", 1)):
        await rig.platforms[name].wait_sessions(count)
    sessions = {n: list(p.sessions) for n, p in rig.platforms.items()}
    return Codecs(
        rig,
        hevc={n: s[:1] for n, s in sessions.items() if n != "gamma"},
        resized={
            "alpha": sessions["alpha"][1:],
            "beta": sessions["beta"][1:],
            "gamma": sessions["gamma"],
        },
        late_enabled_after_s=4.5,
    )


@pytest.fixture(scope="module")
def codecs(ffmpeg_exe: str, tmp_path_factory: pytest.TempPathFactory) -> Codecs:
    folder = tmp_path_factory.mktemp("codecs")
    x265 = ["-c:v", "libx265", "-preset", "ultrafast", "-g", "30"]
    x265 += ["-x265-params", "log-level=error"]
    hevc = ffmpeg_flv(ffmpeg_exe, folder / "hevc.flv", seconds=6, video=x265)
    x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-b:v", "800k"]
    big = _clip(ffmpeg_exe, folder / "big.flv", "640x360", 3, x264)
    little = _clip(ffmpeg_exe, folder / "little.flv", "320x180", 4, x264)
    resized = _splice(big, little, folder / "resized.flv")
    rig = RelayRig(ffmpeg_exe, hevc, folder)

    async def run() -> Codecs:
        try:
            return await _run_codecs(rig, hevc, resized)
        finally:
            await rig.close()

    return asyncio.run(run())


class TestPublisherCodecs:
    def test_a_publisher_sending_hevc_is_relayed_as_is_and_re_encoded_where_asked(
        self, codecs: Codecs, record: CaseRecord
    ) -> None:
        record.case("bad input", "a publisher sending HEVC instead of H.264")
        info = next(e for e in codecs.rig.dicts("ingest.state") if e["state"] == "receiving")
        assert info["info"]["video_codec"] == "hevc", info
        alpha = received_flv(codecs.hevc["alpha"][0])  # Debian's ffprobe 5.1 reads no HEVC FLV
        beta = received(codecs.hevc["beta"][0])
        # A target that starts with the stream joins at a keyframe once its FFmpeg runs: up
        # to a GOP (1 s here) of the 6 s clip may come before that, two behind an encoder.
        assert alpha.codec == "hevc" and alpha.max_gap_s < NO_GAP_S and alpha.seconds >= 4.5
        assert (beta.codec, beta.width, beta.height) == ("h264", 320, 180), beta
        assert beta.max_gap_s < NO_GAP_S and beta.seconds >= 3.5, beta
        record.evidence(
            ingest_saw="hevc",
            passthrough=f"hevc, {alpha.seconds:.1f} s, no gap",
            reencoded=f"h264 320x180, {beta.seconds:.1f} s, no gap",
        )

    def test_a_resolution_change_mid_stream_reaches_every_target_without_a_gap(
        self, codecs: Codecs, record: CaseRecord
    ) -> None:
        record.case("bad input", "a publisher changing resolution mid-stream")
        alpha_path = codecs.resized["alpha"][0]
        alpha = received(alpha_path)
        sizes = frame_sizes(alpha_path)
        assert sizes[0] == (640, 360) and sizes[-1] == (320, 180), sizes[:3] + sizes[-3:]
        assert alpha.max_gap_s < NO_GAP_S and alpha.seconds >= 5.5, alpha  # of 7 s
        beta_path = codecs.resized["beta"][0]
        beta = received(beta_path)
        assert set(frame_sizes(beta_path)) == {(320, 180)}
        # The encoder rebuilds its filters at the change; FFmpeg may skip a frame or two there.
        assert beta.max_gap_s <= 0.15 and beta.seconds >= 5.5, beta
        late = codecs.resized["gamma"][0]
        gamma = received(late)
        assert gamma.starts_at_keyframe and frame_sizes(late)[0] == (320, 180), gamma
        record.evidence(
            passthrough=f"640x360 then 320x180, {alpha.seconds:.1f} s, no gap",
            reencoded=f"320x180 throughout, {beta.seconds:.1f} s, largest gap "
            f"{beta.max_gap_s:.3f} s (at the change)",
            late_joiner="starts at a keyframe with the new size",
        )
