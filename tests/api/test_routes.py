"""Every route of the control API against a real agent: answers, error codes and real effects.

The set-up behind ``api`` is described in :mod:`tests.api.conftest`. Effects are read where
they land: the profile file on disk, the vault, the running relay, a fake platform's
recording, the ingest's listening port.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, WSServerHandshakeError

from agent import __version__
from agent.store.codec import KEYRING_REF
from agent.store.vault import VaultStore
from tests.api.conftest import CHEAP, INGEST_KEY, Api
from tests.streams import (
    FakePlatform,
    Publisher,
    free_port,
    probe,
    stream,
    video_packets,
    wait_listening,
)

V1 = "/api/v1"
STREAM_KEY = "live_8812-abcd-SECRETKEY-93xq"


async def wait_until(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise TimeoutError(f"not in time: {what}")
        await asyncio.sleep(0.1)


async def target_state(api: Api, target_id: str) -> str:
    body = await api.ok("GET", f"{V1}/targets/{target_id}")
    return str(body["state"])


def assert_error(body: Any, code: str) -> dict[str, Any]:
    """The error object of an error answer, checked to be the documented shape."""
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"]
    return error


async def error_of(api: Api, method: str, path: str, status: int, **kwargs: Any) -> dict[str, Any]:
    resp = await api.call(method, path, **kwargs)
    body = await resp.json()
    assert resp.status == status, body
    assert resp.content_type == "application/json"
    return dict(body["error"])


# -- reading ------------------------------------------------------------------------------


class TestReading:
    async def test_healthz_answers_without_a_token(self, api: Api) -> None:
        resp = await api.client.get("/healthz")
        assert resp.status == 200
        assert await resp.json() == {"ok": True, "version": __version__}

    async def test_status_lists_the_ingest_every_group_and_target_and_totals(
        self, api: Api
    ) -> None:
        body = await api.ok("GET", f"{V1}/status")
        assert body["profile"] == "studio"
        assert body["ingest"]["state"] == "listening"
        assert body["ingest"]["url"] == f"rtmp://127.0.0.1:{api.agent.profile.ingest.port}/live"
        groups = {g["id"]: g for g in body["groups"]}
        assert set(groups) == {"main", "hd"}
        assert [t["id"] for t in groups["main"]["targets"]] == ["site", "rec"]
        assert groups["main"]["state"] == "idle"
        assert body["totals"]["targets"] == 3
        assert body["totals"]["groups_live"] == 0

    async def test_stats_holds_the_figures(self, api: Api) -> None:
        body = await api.ok("GET", f"{V1}/stats")
        assert set(body) == {"ingest", "totals", "groups"}
        assert body["totals"]["targets"] == 3
        assert [g["id"] for g in body["groups"]] == ["main", "hd"]

    async def test_groups_lists_each_group_with_its_state(self, api: Api) -> None:
        body = await api.ok("GET", f"{V1}/groups")
        assert [(g["id"], g["mode"], g["state"]) for g in body["groups"]] == [
            ("main", "passthrough", "idle"),
            ("hd", "reencode", "idle"),
        ]

    async def test_one_group_with_its_targets(self, api: Api) -> None:
        body = await api.ok("GET", f"{V1}/groups/hd")
        assert body["id"] == "hd" and body["mode"] == "reencode"
        assert [t["id"] for t in body["targets"]] == ["yt"]

    async def test_one_target_joins_its_setup_and_its_state(self, api: Api) -> None:
        body = await api.ok("GET", f"{V1}/targets/rec")
        assert body["platform"] == "recording"
        assert body["group"] == "main"
        assert body["enabled"] is False and body["state"] == "disabled"
        assert body["group_state"] == "idle"
        assert body["has_key"] is False

    async def test_profile_shows_ingest_groups_and_targets_with_has_key(self, api: Api) -> None:
        body = await api.ok("GET", f"{V1}/profile")
        assert body["name"] == "studio"
        assert body["ingest"]["has_key"] is True
        assert "key" not in body["ingest"]
        targets = {t["id"]: t for g in body["groups"] for t in g["targets"]}
        assert targets["site"]["has_key"] is False
        assert all("key" not in t and "key_ref" not in t for t in targets.values())
        hd = next(g for g in body["groups"] if g["id"] == "hd")
        assert hd["video"]["width"] == 640

    async def test_profiles_lists_them_and_names_the_active_one(self, api: Api) -> None:
        body = await api.ok("GET", f"{V1}/profiles")
        assert body == {"active": "studio", "profiles": ["spare", "studio"]}

    async def test_openapi_document_is_served(self, api: Api) -> None:
        body = await api.ok("GET", f"{V1}/openapi.json")
        assert body["openapi"].startswith("3.1")
        assert f"{V1}/groups/{{id}}/start" in body["paths"]


# -- live operations: groups ----------------------------------------------------------------


class TestGroupActions:
    async def test_start_answers_with_the_started_group(self, api: Api) -> None:
        body = await api.ok("POST", f"{V1}/groups/main/start")
        assert body["id"] == "main"
        assert body["live"] is True and body["state"] == "waiting"  # no stream yet
        assert api.agent.relay is not None and api.agent.relay.groups["main"].live
        assert not api.agent.relay.groups["hd"].wants_output  # nothing else started

    async def test_stop_ends_a_started_group(self, api: Api) -> None:
        await api.ok("POST", f"{V1}/groups/main/start")
        body = await api.ok("POST", f"{V1}/groups/main/stop")
        assert body["live"] is False and body["state"] == "idle"
        assert api.agent.relay is not None and not api.agent.relay.groups["main"].wants_output

    async def test_toggle_starts_then_stops(self, api: Api) -> None:
        first = await api.ok("POST", f"{V1}/groups/main/toggle")
        second = await api.ok("POST", f"{V1}/groups/main/toggle")
        assert (first["live"], second["live"]) == (True, False)
        assert (first["state"], second["state"]) == ("waiting", "idle")

    async def test_arm_is_answered_and_kept_in_the_profile_file(self, api: Api) -> None:
        body = await api.ok("POST", f"{V1}/groups/main/arm")
        assert body["armed"] is True and body["state"] == "armed"
        assert api.saved_group("main")["armed"] is True

    async def test_disarm_is_answered_and_kept_in_the_profile_file(self, api: Api) -> None:
        await api.ok("POST", f"{V1}/groups/main/arm")
        body = await api.ok("POST", f"{V1}/groups/main/disarm")
        assert body["armed"] is False and body["state"] == "idle"
        assert api.saved_group("main")["armed"] is False

    async def test_starting_a_group_whose_target_has_no_key_is_a_conflict(self, api: Api) -> None:
        error = await error_of(api, "POST", f"{V1}/groups/hd/start", 409)
        assert error["code"] == "conflict"
        assert error["subject"] == "target 'yt'"
        assert "cascade key set yt" in error["message"]
        assert api.agent.relay is not None and not api.agent.relay.groups["hd"].wants_output

    async def test_a_group_starts_once_its_key_is_stored(self, api: Api) -> None:
        await api.ok("PUT", f"{V1}/targets/yt/key", {"key": STREAM_KEY}, status=204)
        body = await api.ok("POST", f"{V1}/groups/hd/start")
        assert body["live"] is True

    async def test_start_all_starts_every_group(self, api: Api) -> None:
        await api.ok("PUT", f"{V1}/targets/yt/key", {"key": STREAM_KEY}, status=204)
        body = await api.ok("POST", f"{V1}/start-all")
        assert {g["id"]: g["live"] for g in body["groups"]} == {"main": True, "hd": True}
        assert body["profile"] == "studio"

    async def test_start_all_starts_none_if_one_cannot_start(self, api: Api) -> None:
        error = await error_of(api, "POST", f"{V1}/start-all", 409)
        assert error["subject"] == "target 'yt'"
        status = await api.ok("GET", f"{V1}/status")
        assert [g["state"] for g in status["groups"]] == ["idle", "idle"]

    async def test_stop_all_stops_every_group(self, api: Api) -> None:
        await api.ok("POST", f"{V1}/groups/main/start")
        await api.ok("POST", f"{V1}/groups/main/arm")
        body = await api.ok("POST", f"{V1}/stop-all")
        assert [(g["live"], g["armed"]) for g in body["groups"]] == [(False, False)] * 2
        assert api.saved_group("main")["armed"] is False


# -- live operations: targets ---------------------------------------------------------------


class TestTargetActions:
    async def test_disable_switches_one_target_off_and_keeps_it_off(self, api: Api) -> None:
        body = await api.ok("POST", f"{V1}/targets/site/disable")
        assert body["enabled"] is False and body["state"] == "disabled"
        saved = {t["id"]: t["enabled"] for t in api.saved_group("main")["targets"]}
        assert saved == {"site": False, "rec": False}

    async def test_enable_switches_one_target_on_touching_no_other(self, api: Api) -> None:
        await api.ok("POST", f"{V1}/groups/main/start")
        body = await api.ok("POST", f"{V1}/targets/rec/enable")
        assert body["enabled"] is True and body["state"] == "waiting"
        assert body["group_state"] == "waiting"
        saved = {t["id"]: t["enabled"] for t in api.saved_group("main")["targets"]}
        assert saved == {"site": True, "rec": True}
        site = await api.ok("GET", f"{V1}/targets/site")
        assert site["state"] == "waiting"

    async def test_toggle_flips_a_target(self, api: Api) -> None:
        first = await api.ok("POST", f"{V1}/targets/site/toggle")
        second = await api.ok("POST", f"{V1}/targets/site/toggle")
        assert (first["enabled"], second["enabled"]) == (False, True)

    async def test_enabling_a_keyless_target_of_a_started_group_is_a_conflict(
        self, api: Api
    ) -> None:
        await api.ok("PUT", f"{V1}/targets/yt/key", {"key": STREAM_KEY}, status=204)
        await api.ok("POST", f"{V1}/groups/main/targets", {"id": "tw", "platform": "twitch"}, 201)
        await api.ok("POST", f"{V1}/targets/tw/disable")
        await api.ok("POST", f"{V1}/groups/main/start")
        error = await error_of(api, "POST", f"{V1}/targets/tw/enable", 409)
        assert error["subject"] == "target 'tw'"
        tw = next(t for t in api.saved_group("main")["targets"] if t["id"] == "tw")
        assert tw["enabled"] is False


# -- editing the profile --------------------------------------------------------------------


class TestGroupEditing:
    async def test_post_group_creates_it_and_saves_it(self, api: Api) -> None:
        spec = {
            "id": "low",
            "name": "Low",
            "mode": "reencode",
            "video": {
                "codec": "libx264",
                "width": 426,
                "height": 240,
                "fps": 30,
                "bitrate_kbps": 400,
                "keyframe_interval_s": 2,
                "preset": "ultrafast",
            },
            "audio": {"codec": "aac", "bitrate_kbps": 96},
        }
        body = await api.ok("POST", f"{V1}/groups", spec, status=201)
        assert body["id"] == "low" and body["targets"] == []
        saved = api.saved_group("low")
        assert saved["mode"] == "reencode" and saved["video"]["height"] == 240
        assert saved["audio"]["codec"] == "aac"
        listed = await api.ok("GET", f"{V1}/groups")
        assert [g["id"] for g in listed["groups"]] == ["main", "hd", "low"]
        assert listed["groups"][2]["state"] == "idle"

    async def test_patch_group_merges_video_and_saves_it(self, api: Api) -> None:
        body = await api.ok("PATCH", f"{V1}/groups/hd", {"name": "HD", "video": {"fps": 25}})
        assert body["name"] == "HD" and body["video"]["fps"] == 25
        saved = api.saved_group("hd")
        assert saved["video"]["fps"] == 25
        assert saved["video"]["width"] == 640  # the rest of video kept
        assert api.agent.relay is not None
        assert api.agent.relay.groups["hd"].group.video.fps == 25  # the relay follows

    async def test_patch_group_renames_it(self, api: Api) -> None:
        body = await api.ok("PATCH", f"{V1}/groups/main", {"id": "primary"})
        assert body["id"] == "primary"
        assert [g["id"] for g in api.saved()["groups"]] == ["primary", "hd"]
        await error_of(api, "GET", f"{V1}/groups/main", 404)
        assert (await api.ok("GET", f"{V1}/groups/primary"))["state"] == "idle"

    async def test_delete_group_removes_it_and_forgets_its_keys(self, api: Api) -> None:
        await api.ok("PUT", f"{V1}/targets/yt/key", {"key": STREAM_KEY}, status=204)
        resp = await api.delete(f"{V1}/groups/hd")
        assert resp.status == 204
        assert [g["id"] for g in api.saved()["groups"]] == ["main"]
        assert api.vault.get("studio", "yt") is None
        await error_of(api, "GET", f"{V1}/groups/hd", 404)

    async def test_post_group_target_adds_it_and_saves_it(self, api: Api) -> None:
        spec = {
            "id": "tw",
            "name": "Twitch",
            "platform": "twitch",
            "url": "rtmp://live.twitch.tv/app",
            "enabled": False,
        }
        body = await api.ok("POST", f"{V1}/groups/hd/targets", spec, status=201)
        assert body == {
            "id": "tw",
            "name": "Twitch",
            "platform": "twitch",
            "url": "rtmp://live.twitch.tv/app",
            "enabled": False,
            "backup": False,
            "has_key": False,
            "group": "hd",
        }
        saved = [t["id"] for t in api.saved_group("hd")["targets"]]
        assert saved == ["yt", "tw"]
        assert (await target_state(api, "tw")) == "disabled"


class TestTargetEditing:
    async def test_patch_target_changes_and_saves_it(self, api: Api) -> None:
        url = f"rtmp://127.0.0.1:{free_port()}/other"
        body = await api.ok("PATCH", f"{V1}/targets/site", {"url": url, "name": "Other"})
        assert body["url"] == url and body["name"] == "Other" and body["group"] == "main"
        site = next(t for t in api.saved_group("main")["targets"] if t["id"] == "site")
        assert site["url"] == url
        status = await api.ok("GET", f"{V1}/targets/site")
        assert status["destination"] == url

    async def test_renaming_a_target_moves_its_stored_key(self, api: Api) -> None:
        await api.ok("PUT", f"{V1}/targets/yt/key", {"key": STREAM_KEY}, status=204)
        body = await api.ok("PATCH", f"{V1}/targets/yt", {"id": "youtube"})
        assert body["id"] == "youtube" and body["has_key"] is True
        assert api.vault.get("studio", "youtube") == STREAM_KEY
        assert api.vault.get("studio", "yt") is None

    async def test_delete_target_removes_it_and_forgets_its_key(self, api: Api) -> None:
        await api.ok("PUT", f"{V1}/targets/yt/key", {"key": STREAM_KEY}, status=204)
        resp = await api.delete(f"{V1}/targets/yt")
        assert resp.status == 204
        assert api.saved_group("hd")["targets"] == []
        assert api.vault.get("studio", "yt") is None
        await error_of(api, "GET", f"{V1}/targets/yt", 404)

    async def test_put_key_stores_it_in_the_vault_and_only_the_reference_on_disk(
        self, api: Api
    ) -> None:
        resp = await api.put(f"{V1}/targets/site/key", json_body={"key": STREAM_KEY})
        assert resp.status == 204
        assert await resp.read() == b""
        assert api.vault.get("studio", "site") == STREAM_KEY
        site = next(t for t in api.saved_group("main")["targets"] if t["id"] == "site")
        assert site["key_ref"] == KEYRING_REF
        assert STREAM_KEY not in api.store.path_of("studio").read_text("utf-8")
        assert (await api.ok("GET", f"{V1}/targets/site"))["has_key"] is True

    async def test_put_key_trims_whitespace_around_the_key(self, api: Api) -> None:
        await api.ok("PUT", f"{V1}/targets/yt/key", {"key": f"  {STREAM_KEY}\n"}, status=204)
        assert api.vault.get("studio", "yt") == STREAM_KEY


class TestIngest:
    async def test_get_ingest_shows_it_without_its_key(self, api: Api) -> None:
        body = await api.ok("GET", f"{V1}/ingest")
        port = api.agent.profile.ingest.port
        assert body["kind"] == "rtmp" and body["port"] == port
        assert body["obs_url"] == f"rtmp://127.0.0.1:{port}/live"
        assert body["has_key"] is True and "key" not in body

    async def test_patch_ingest_saves_it_and_listens_on_the_new_port(self, api: Api) -> None:
        port = free_port()
        body = await api.ok("PATCH", f"{V1}/ingest", {"port": port, "app": "obs"})
        assert body["port"] == port and body["obs_url"] == f"rtmp://127.0.0.1:{port}/obs"
        assert api.saved()["ingest"]["port"] == port
        await wait_listening(port)


class TestProfiles:
    async def test_activate_runs_another_profile(self, api: Api) -> None:
        body = await api.ok("POST", f"{V1}/profiles/spare/activate")
        assert body == {"active": "spare", "profiles": ["spare", "studio"]}
        state = json.loads((api.config_dir / "state.json").read_text("utf-8"))
        assert state == {"active": "spare"}
        status = await api.ok("GET", f"{V1}/status")
        assert status["profile"] == "spare"
        assert [g["id"] for g in status["groups"]] == ["backup-main"]
        await wait_listening(api.agent.profile.ingest.port)

    async def test_activating_the_active_profile_changes_nothing(self, api: Api) -> None:
        relay = api.agent.relay
        body = await api.ok("POST", f"{V1}/profiles/studio/activate")
        assert body["active"] == "studio"
        assert api.agent.relay is relay

    async def test_activating_while_a_group_is_started_is_a_conflict(self, api: Api) -> None:
        await api.ok("POST", f"{V1}/groups/main/start")
        error = await error_of(api, "POST", f"{V1}/profiles/spare/activate", 409)
        assert error["subject"] == "profile 'studio'"
        assert "stop-all" in error["hint"]
        assert (await api.ok("GET", f"{V1}/profiles"))["active"] == "studio"
        assert (await api.ok("GET", f"{V1}/groups/main"))["live"] is True


# -- a started group really sends -----------------------------------------------------------


@dataclass
class Live:
    """``main`` started and sending the publisher's stream to a fake platform via ``site``."""

    api: Api
    platform: FakePlatform
    publisher: Publisher


@pytest.fixture
async def live(api: Api, ffmpeg_exe: str, relay_clip: Path, tmp_path: Path) -> AsyncIterator[Live]:
    platform = FakePlatform(ffmpeg_exe, tmp_path / "platform", key="platform-key-5be1")
    obs_url = f"{api.agent.profile.ingest.obs_url}/{INGEST_KEY}"
    publisher = Publisher(ffmpeg_exe, relay_clip, obs_url)
    await platform.start()
    try:
        await api.ok("PATCH", f"{V1}/targets/site", {"url": platform.url})
        await api.ok("PUT", f"{V1}/targets/site/key", {"key": platform.key}, status=204)
        await api.ok("POST", f"{V1}/groups/main/start")
        await publisher.start()

        async def sending() -> bool:
            return await target_state(api, "site") == "live"

        await wait_until(sending, "target 'site' live")
        yield Live(api, platform, publisher)
    finally:
        await publisher.stop()
        await platform.stop()


class TestLive:
    async def test_a_started_passthrough_group_sends_the_stream_to_its_target(
        self, live: Live
    ) -> None:
        api = live.api

        async def bytes_sent() -> bool:
            site = await api.ok("GET", f"{V1}/targets/site")
            return bool(site["bytes_sent"] > 200_000)

        await wait_until(bytes_sent, "200 kB sent")
        body = await api.ok("GET", f"{V1}/groups/main")
        assert body["state"] == "live"
        stopped = await api.ok("POST", f"{V1}/groups/main/stop")
        assert stopped["state"] == "idle"
        await live.platform.wait_sessions(1)
        received = live.platform.sessions[0]
        info = probe(received)
        assert info["format"]["format_name"] == "flv"
        assert stream(info, "video")["codec_name"] == "h264"
        assert stream(info, "video")["width"] == 640
        assert stream(info, "audio")["codec_name"] == "aac"
        packets = video_packets(received)
        assert len(packets) >= 30 and any(key for _, key in packets)

    async def test_changing_what_is_live_is_a_conflict_and_changes_nothing(
        self, live: Live
    ) -> None:
        api = live.api
        before = api.store.path_of("studio").read_bytes()
        refused = [
            ("DELETE", "groups/main", None, "group 'main'"),
            ("PATCH", "groups/main", {"mode": "reencode"}, "group 'main'"),
            ("DELETE", "targets/site", None, "target 'site'"),
            ("PATCH", "targets/site", {"url": "rtmp://127.0.0.1:1/elsewhere"}, "target 'site'"),
            ("PATCH", "ingest", {"app": "other"}, "ingest"),
            ("POST", "profiles/spare/activate", None, "profile 'studio'"),
        ]
        for method, path, body, subject in refused:
            error = await error_of(api, method, f"{V1}/{path}", 409, json_body=body)
            assert error["code"] == "conflict" and error["subject"] == subject, (path, error)
            assert error["hint"], (path, error)
        assert api.store.path_of("studio").read_bytes() == before
        assert (await api.ok("GET", f"{V1}/profiles"))["active"] == "studio"
        assert await target_state(api, "site") == "live"
        assert live.platform.connected


# -- errors ---------------------------------------------------------------------------------


UNKNOWN_IDS = [
    ("GET", "groups/nope"),
    ("PATCH", "groups/nope"),
    ("DELETE", "groups/nope"),
    ("POST", "groups/nope/targets"),
    *(("POST", f"groups/nope/{action}") for action in ("start", "stop", "toggle", "arm", "disarm")),
    ("GET", "targets/nope"),
    ("PATCH", "targets/nope"),
    ("DELETE", "targets/nope"),
    ("PUT", "targets/nope/key"),
    *(("POST", f"targets/nope/{action}") for action in ("enable", "disable", "toggle")),
    ("POST", "profiles/nope/activate"),
]
BODIES = {
    "PATCH": {"name": "x"},
    "PUT": {"key": STREAM_KEY},
    "POST": {"id": "fresh", "platform": "custom", "url": "rtmp://127.0.0.1:1/live"},
}


class TestNotFound:
    @pytest.mark.parametrize(
        ("method", "path"), [pytest.param(m, p, id=f"{m}-{p}") for m, p in UNKNOWN_IDS]
    )
    async def test_an_unknown_id_is_404_and_changes_nothing(
        self, api: Api, method: str, path: str
    ) -> None:
        before = api.store.path_of("studio").read_bytes()
        error = await error_of(api, method, f"{V1}/{path}", 404, json_body=BODIES.get(method))
        assert error["code"] == "not_found"
        assert "'nope'" in error["message"]
        assert error["hint"].startswith("Known")
        assert api.store.path_of("studio").read_bytes() == before
        assert api.vault.get("studio", "nope") is None

    async def test_an_unknown_path_is_404(self, api: Api) -> None:
        error = await error_of(api, "GET", f"{V1}/nothing-here", 404)
        assert error["code"] == "not_found" and "openapi.json" in error["message"]

    async def test_an_unknown_action_is_404(self, api: Api) -> None:
        error = await error_of(api, "POST", f"{V1}/groups/main/explode", 404)
        assert error["code"] == "not_found"


class TestMethodNotAllowed:
    @pytest.mark.parametrize(
        ("method", "path", "allowed"),
        [
            pytest.param("GET", "groups/main/start", "POST", id="get-start"),
            pytest.param("GET", "start-all", "POST", id="get-start-all"),
            pytest.param("DELETE", "status", "GET", id="delete-status"),
            pytest.param("POST", "profile", "GET", id="post-profile"),
            pytest.param("GET", "targets/site/key", "PUT", id="get-key"),
            pytest.param("PUT", "ingest", "GET,PATCH", id="put-ingest"),
        ],
    )
    async def test_a_wrong_method_is_405_with_allow(
        self, api: Api, method: str, path: str, allowed: str
    ) -> None:
        resp = await api.call(method, f"{V1}/{path}")
        body = await resp.json()
        assert resp.status == 405
        assert_error(body, "method_not_allowed")
        assert set(resp.headers["Allow"].split(",")) <= set(allowed.split(",")) | {"HEAD"}
        assert set(allowed.split(",")) <= set(resp.headers["Allow"].split(","))

    async def test_a_get_on_an_action_changes_nothing(self, api: Api) -> None:
        await api.call("GET", f"{V1}/groups/main/start")
        assert (await api.ok("GET", f"{V1}/groups/main"))["live"] is False


BAD_BODIES = [
    pytest.param(b"{not json", "not valid JSON", id="not-json"),
    pytest.param(b"[1, 2]", "JSON object", id="array"),
    pytest.param(b'"main"', "JSON object", id="string"),
    pytest.param(b"42", "JSON object", id="number"),
    pytest.param(b"null", "JSON object", id="null"),
    pytest.param(b"", "needs a JSON object", id="missing"),
    pytest.param(b"  \n", "needs a JSON object", id="blank"),
    pytest.param(b'{"name": "\xff"}', "not valid JSON", id="not-utf8"),
]


class TestBadBodies:
    @pytest.mark.parametrize(("raw", "says"), BAD_BODIES)
    async def test_an_unreadable_body_is_400_and_changes_nothing(
        self, api: Api, raw: bytes, says: str
    ) -> None:
        before = api.store.path_of("studio").read_bytes()
        headers = {"Content-Type": "application/json"}
        error = await error_of(api, "PATCH", f"{V1}/groups/main", 400, data=raw, headers=headers)
        assert error["code"] == "bad_request"
        assert says in error["message"]
        assert api.store.path_of("studio").read_bytes() == before

    async def test_every_route_with_a_body_refuses_a_missing_one(self, api: Api) -> None:
        routes = [
            ("POST", "groups"),
            ("PATCH", "groups/main"),
            ("POST", "groups/main/targets"),
            ("PATCH", "targets/site"),
            ("PUT", "targets/site/key"),
            ("PATCH", "ingest"),
        ]
        before = api.store.path_of("studio").read_bytes()
        for method, path in routes:
            error = await error_of(api, method, f"{V1}/{path}", 400)
            assert error["code"] == "bad_request", (method, path)
        assert api.store.path_of("studio").read_bytes() == before

    async def test_a_body_over_64_kib_is_413_and_changes_nothing(self, api: Api) -> None:
        before = api.store.path_of("studio").read_bytes()
        raw = json.dumps({"name": "x" * (64 * 1024)}).encode()
        error = await error_of(api, "PATCH", f"{V1}/groups/main", 413, data=raw)
        assert error["code"] == "too_large" and "64 KiB" in error["message"]
        assert api.store.path_of("studio").read_bytes() == before

    async def test_a_body_just_under_the_limit_is_read(self, api: Api) -> None:
        name = "n" * (60 * 1024)
        body = await api.ok("PATCH", f"{V1}/groups/main", {"name": name})
        assert body["name"] == name


INVALID = [
    pytest.param("POST", "groups", {"id": "x", "mode": "bogus"}, ".mode", id="bad-mode"),
    pytest.param("POST", "groups", {"id": "Bad Id!"}, "id", id="bad-group-id"),
    pytest.param("POST", "groups", {"id": "main"}, "id", id="taken-id"),
    pytest.param("POST", "groups", {"id": "x", "colour": "red"}, ".colour", id="unknown-setting"),
    pytest.param(
        "POST",
        "groups",
        {"id": "x", "mode": "reencode", "video": {"bitrate_kbps": -5}},
        ".bitrate_kbps",
        id="bad-bitrate",
    ),
    pytest.param("PATCH", "groups/hd", {"video": {"fps": "fast"}}, ".fps", id="bad-fps"),
    pytest.param("PATCH", "groups/main", {"targets": []}, "targets", id="targets-in-group"),
    pytest.param("PATCH", "ingest", {"port": 99999}, "ingest.port", id="port-out-of-range"),
    pytest.param("PATCH", "ingest", {"port": "abc"}, "ingest.port", id="port-not-a-number"),
    pytest.param("PATCH", "ingest", {"kind": "webrtc"}, "ingest.kind", id="bad-kind"),
    pytest.param("PATCH", "ingest", {"volume": 3}, "ingest.volume", id="unknown-ingest-setting"),
    pytest.param(
        "POST", "groups/main/targets", {"id": "x", "platform": "myspace"}, ".platform", id="bad-pf"
    ),
    pytest.param(
        "POST",
        "groups/main/targets",
        {"id": "x", "platform": "custom", "url": "http://example.com/live"},
        ".url",
        id="bad-url",
    ),
    pytest.param("PATCH", "targets/site", {"enabled": "yes"}, ".enabled", id="bad-enabled"),
    pytest.param("PUT", "targets/site/key", {"key": ""}, "key", id="empty-key"),
    pytest.param("PUT", "targets/site/key", {}, "key", id="no-key"),
    pytest.param("PUT", "targets/site/key", {"key": 12345}, "key", id="key-not-a-string"),
]


class TestInvalid:
    @pytest.mark.parametrize(("method", "path", "body", "field"), INVALID)
    async def test_a_bad_value_is_422_naming_the_field_and_changes_nothing(
        self, api: Api, method: str, path: str, body: Any, field: str
    ) -> None:
        before = api.store.path_of("studio").read_bytes()
        error = await error_of(api, method, f"{V1}/{path}", 422, json_body=body)
        assert error["code"] == "invalid"
        assert error["field"] is not None
        assert error["field"] == field or error["field"].endswith(field), error
        assert api.store.path_of("studio").read_bytes() == before
        assert api.vault.get("studio", "site") is None

    async def test_an_unknown_setting_is_refused_not_said_to_be_ignored(self, api: Api) -> None:
        error = await error_of(api, "PATCH", f"{V1}/targets/site", 422, json_body={"colour": "red"})
        assert "unknown setting" in error["message"]
        assert "ignored" not in error["message"]


# -- keys are never returned ----------------------------------------------------------------


class TestKeysNeverReturned:
    async def test_no_answer_holds_a_stored_key(self, api: Api) -> None:
        await api.ok("PUT", f"{V1}/targets/site/key", {"key": STREAM_KEY}, status=204)
        await api.ok("PUT", f"{V1}/targets/yt/key", {"key": STREAM_KEY + "2"}, status=204)
        texts = []
        for path in (
            "status",
            "stats",
            "groups",
            "groups/main",
            "groups/hd",
            "targets/site",
            "targets/yt",
            "profile",
            "ingest",
        ):
            resp = await api.get(f"{V1}/{path}")
            assert resp.status == 200
            texts.append(await resp.text())
        for action in ("groups/main/start", "targets/site/toggle", "start-all", "stop-all"):
            resp = await api.post(f"{V1}/{action}")
            assert resp.status == 200, await resp.text()
            texts.append(await resp.text())
        assert texts and all(STREAM_KEY not in text for text in texts)
        assert all(INGEST_KEY not in text for text in texts)
        assert all(api.token not in text for text in texts)
        profile = json.loads(texts[7])
        has_key = {t["id"]: t["has_key"] for g in profile["groups"] for t in g["targets"]}
        assert has_key == {"site": True, "rec": False, "yt": True}

    async def test_a_refused_key_is_not_echoed(self, api: Api) -> None:
        bad = f"{STREAM_KEY} {STREAM_KEY}"
        resp = await api.put(f"{V1}/targets/site/key", json_body={"key": bad})
        text = await resp.text()
        assert resp.status == 422
        assert json.loads(text)["error"]["field"] == "key"
        assert STREAM_KEY not in text

    async def test_an_overlong_key_is_refused_and_not_echoed(self, api: Api) -> None:
        bad = "k" * 2000
        resp = await api.put(f"{V1}/targets/site/key", json_body={"key": bad})
        text = await resp.text()
        assert resp.status == 422 and "k" * 100 not in text
        assert api.vault.get("studio", "site") is None

    @pytest.mark.parametrize(
        ("method", "path"),
        [("POST", "groups/main/targets"), ("PATCH", "targets/site")],
    )
    async def test_a_key_in_a_target_edit_is_refused_and_not_echoed(
        self, api: Api, method: str, path: str
    ) -> None:
        body = {"id": "fresh", "platform": "custom", "key": STREAM_KEY}
        if method == "PATCH":
            body = {"key": STREAM_KEY}
        resp = await api.call(method, f"{V1}/{path}", json_body=body)
        text = await resp.text()
        assert resp.status == 422
        assert json.loads(text)["error"]["field"] == "key"
        assert STREAM_KEY not in text
        assert STREAM_KEY not in api.store.path_of("studio").read_text("utf-8")

    async def test_a_vault_that_cannot_open_is_503_without_the_key(self, api: Api) -> None:
        other = VaultStore(api.vault.path, "another-passphrase", kdf=CHEAP)
        other.set("studio", "elsewhere", "x" * 20)
        resp = await api.put(f"{V1}/targets/site/key", json_body={"key": STREAM_KEY})
        text = await resp.text()
        assert resp.status == 503
        assert json.loads(text)["error"]["code"] == "unavailable"
        assert STREAM_KEY not in text
        assert other.get("studio", "site") is None


# -- events ---------------------------------------------------------------------------------


class TestEvents:
    async def test_refused_without_a_token(self, api: Api) -> None:
        with pytest.raises(WSServerHandshakeError) as caught:
            await api.client.ws_connect(f"{V1}/events")
        assert caught.value.status == 401

    async def test_refused_with_a_wrong_query_token(self, api: Api) -> None:
        with pytest.raises(WSServerHandshakeError) as caught:
            await api.client.ws_connect(f"{V1}/events?token=wrong")
        assert caught.value.status == 401

    async def test_refused_from_a_foreign_origin(self, api: Api) -> None:
        with pytest.raises(WSServerHandshakeError) as caught:
            await api.client.ws_connect(
                f"{V1}/events?token={api.token}", headers={"Origin": "http://evil.example"}
            )
        assert caught.value.status == 403

    async def test_hello_with_status_first_over_the_query_token(self, api: Api) -> None:
        ws = await api.client.ws_connect(f"{V1}/events?token={api.token}")
        try:
            hello = await ws.receive_json(timeout=5)
        finally:
            await ws.close()
        assert hello["type"] == "hello" and hello["version"] == __version__
        assert [g["id"] for g in hello["status"]["groups"]] == ["main", "hd"]

    async def test_a_started_group_sends_a_group_state_event(self, api: Api) -> None:
        ws = await api.client.ws_connect(f"{V1}/events", headers=api.auth())
        try:
            hello = await ws.receive_json(timeout=5)
            assert hello["type"] == "hello"
            await api.ok("POST", f"{V1}/groups/main/start")
            seen: list[dict[str, Any]] = []
            while not any(e["type"] == "group.state" for e in seen):
                msg = await ws.receive(timeout=5)
                assert msg.type is WSMsgType.TEXT, msg
                seen.append(json.loads(msg.data))
        finally:
            await ws.close()
        event = next(e for e in seen if e["type"] == "group.state")
        assert event["group"] == "main" and event["state"] == "waiting"

    async def test_kinds_keeps_only_those_events(self, api: Api) -> None:
        ws = await api.client.ws_connect(f"{V1}/events?kinds=target.state", headers=api.auth())
        try:
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
            await api.ok("POST", f"{V1}/groups/main/start")
            event = await ws.receive_json(timeout=5)
        finally:
            await ws.close()
        assert event["type"] == "target.state" and event["target"] == "site"


# -- the token and showing itself ---------------------------------------------------------------


async def test_rotating_the_token_switches_at_once_and_never_answers_it(api: Api) -> None:
    answer = await api.post("/api/v1/token/rotate")
    assert answer.status == 204, await answer.text()
    assert await answer.read() == b""
    [new] = api.rotations
    refused = await api.get("/api/v1/status")  # the old token
    assert refused.status == 401
    api.token = new
    assert (await api.get("/api/v1/status")).status == 200


async def test_show_asks_the_tray_to_show_itself_with_an_event(api: Api) -> None:
    with api.agent.bus.subscribe(["ui.show"]) as shown:
        assert await api.ok("POST", "/api/v1/show") == {"ok": True}
        event = await asyncio.wait_for(shown.get(), 5)
    assert event.to_dict()["type"] == "ui.show"
