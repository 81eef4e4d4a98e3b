"""The Set-up and Settings views' routes against a real agent: the encoders the probe found
usable (and why not the others), re-probing, the agent-wide settings (FFmpeg, notifications,
launch at login), the platform presets, and creating and deleting profiles.

Launch at login is the platform's business (agent.platform.autostart); here a recorder
stands in for it, put where the control layer imports it from.
"""

from __future__ import annotations

import json
import os
import sys
import types
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import pytest

from agent.api.app import create_app
from agent.api.security import Guard
from agent.control import Control
from agent.core.agent import Agent
from agent.core.model import Group, IngestSettings, Profile
from agent.core.platforms import PRESETS
from agent.core.push import KeySource
from agent.core.settings import SETTINGS_FILE, Settings
from agent.errors import CascadeError
from agent.store.codec import KEYRING_REF
from agent.store.profiles import ProfileStore
from agent.store.vault import VaultStore
from tests.api.conftest import TOKEN, Api
from tests.streams import free_port, wait_listening

V1 = "/api/v1"
STREAM_KEY = "live_setup-key-0c41d7"
AUTOSTART_MODULE = "agent.platform.autostart"


def error_of(body: Any, code: str) -> dict[str, Any]:
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, body
    return error


async def refused(api: Api, method: str, path: str, body: Any, status: int) -> dict[str, Any]:
    resp = await api.call(method, path, json_body=body)
    answer = await resp.json()
    assert resp.status == status, answer
    return dict(answer["error"])


def settings_file(api: Api) -> dict[str, Any] | None:
    path = api.config_dir / SETTINGS_FILE
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return data


# -- a recorder in place of agent.platform.autostart ------------------------------------------


@dataclass
class AutostartStatus:
    supported: bool
    enabled: bool
    detail: str


@dataclass
class FakeAutostart:
    supported: bool = True
    enabled: bool = False
    fail_with: str = ""
    calls: list[str] = field(default_factory=list)

    def status(self) -> AutostartStatus:
        detail = "an entry in ~/.config/autostart" if self.supported else "no desktop session"
        return AutostartStatus(self.supported, self.enabled, detail)

    def enable(self) -> None:
        self.calls.append("enable")
        if self.fail_with:
            raise CascadeError(self.fail_with, subject="launch at login")
        self.enabled = True

    def disable(self) -> None:
        self.calls.append("disable")
        self.enabled = False


@pytest.fixture
def autostart(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAutostart]:
    fake = FakeAutostart()
    module = types.ModuleType(AUTOSTART_MODULE)
    seen: list[Path] = []

    def for_this_machine(config_dir: Path) -> FakeAutostart:
        seen.append(config_dir)
        return fake

    module.for_this_machine = for_this_machine  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, AUTOSTART_MODULE, module)
    yield fake
    assert all(folder == Path(os.environ["CASCADE_CONFIG_DIR"]) for folder in seen), seen


# -- encoders -------------------------------------------------------------------------------


class TestEncoders:
    async def test_every_encoder_with_its_verdict_from_the_probe(self, api: Api) -> None:
        body = await api.ok("GET", f"{V1}/encoders")
        caps = api.agent.capabilities
        assert caps is not None
        names = [e["name"] for e in body["video"]]
        assert names[:2] == ["libx264", "libx265"]
        assert {"h264_nvenc", "h264_qsv", "h264_amf", "h264_vaapi"} <= set(names)
        for entry in body["video"]:
            verdict = caps.encoder_status(entry["name"])
            assert entry["usable"] is verdict.usable, entry
            assert entry["reason"] == (None if verdict.usable else verdict.reason), entry
            assert entry["label"]
        x264 = body["video"][0]
        assert x264 == {
            "name": "libx264",
            "usable": True,
            "reason": None,
            "label": "x264 (software)",
            "family": "software",
        }
        audio = {e["name"]: e for e in body["audio"]}
        assert list(audio) == ["copy", "aac", "libopus", "libmp3lame"]
        assert all(e["usable"] and e["reason"] is None for e in audio.values())
        assert api.agent.ffmpeg is not None
        assert body["ffmpeg"] == {
            "path": str(api.agent.ffmpeg.path),
            "version": api.agent.ffmpeg.version,
        }
        assert datetime.fromisoformat(body["probed_at"]).timestamp() == pytest.approx(
            caps.probed_at, abs=0.001
        )

    async def test_what_is_offered_as_usable_is_what_a_group_accepts(self, api: Api) -> None:
        body = await api.ok("GET", f"{V1}/encoders")
        unusable = next((e for e in body["video"] if not e["usable"]), None)
        usable = next(e for e in body["video"] if e["usable"])
        group = {"id": "enc", "mode": "reencode", "video": {"codec": usable["name"]}}
        await api.ok("POST", f"{V1}/groups", group, status=201)
        if unusable is None:
            pytest.skip("every encoder the probe tests works on this machine")
        bad = {"id": "enc2", "mode": "reencode", "video": {"codec": unusable["name"]}}
        error = await refused(api, "POST", f"{V1}/groups", bad, 422)
        assert error["field"].endswith("video.codec")
        assert unusable["reason"] in error["message"]

    async def test_a_re_probe_probes_again_and_answers_the_same_shape(self, api: Api) -> None:
        before = await api.ok("GET", f"{V1}/encoders")
        old = api.agent.capabilities
        after = await api.ok("POST", f"{V1}/encoders/probe")
        assert api.agent.capabilities is not old
        assert api.agent.relay is not None
        assert api.agent.relay.capabilities is api.agent.capabilities
        assert after["probed_at"] > before["probed_at"]
        assert [e["name"] for e in after["video"]] == [e["name"] for e in before["video"]]
        cache = json.loads((api.config_dir / "cache" / "capabilities.json").read_text("utf-8"))
        probed = [entry["probed_at"] for entry in cache["entries"].values()]
        assert max(probed) == pytest.approx(datetime.fromisoformat(after["probed_at"]).timestamp())

    async def test_encoders_need_the_token(self, api: Api) -> None:
        assert (await api.client.get(f"{V1}/encoders")).status == 401
        assert (await api.client.post(f"{V1}/encoders/probe")).status == 401


# -- an agent whose FFmpeg setting is wrong -------------------------------------------------


@dataclass
class Broken:
    client: Any
    agent: Agent
    ingest_port: int

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        resp = await self.client.request(
            method, path, json=body, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        return resp.status, await resp.json()


@pytest.fixture
async def broken(
    config_dir: Path,
    tmp_path: Path,
    aiohttp_client: Any,
    keys_for: Callable[[str], KeySource],
) -> AsyncIterator[Broken]:
    """A started agent whose ffmpeg setting names a file that does not exist."""
    store = ProfileStore(config_dir)
    port = free_port()
    store.save(Profile(name="studio", ingest=IngestSettings(port=port), groups=[Group("main")]))
    store.use("studio")
    settings = Settings(ffmpeg=str(tmp_path / "gone" / "ffmpeg"))
    agent = Agent(config_dir, settings=settings, profile=store.load("studio"))
    await agent.start()
    try:
        assert agent.ffmpeg_error is not None
        control = Control(agent, store, secrets=_no_secrets, keys_for=keys_for)
        guard = Guard(TOKEN, port=0)
        client = await aiohttp_client(create_app(control, guard))
        guard.port = client.server.port
        yield Broken(client, agent, port)
    finally:
        await agent.stop()


def _no_secrets() -> Any:
    raise AssertionError("no stream keys here")


class TestWithoutFFmpeg:
    async def test_encoders_are_a_409_that_says_ffmpeg_is_missing(self, broken: Broken) -> None:
        status, body = await broken.call("GET", f"{V1}/encoders")
        assert status == 409
        assert "FFmpeg is not available" in error_of(body, "conflict")["message"]
        status, body = await broken.call("POST", f"{V1}/encoders/probe")
        assert status == 409

    async def test_settings_show_no_ffmpeg_in_use(self, broken: Broken) -> None:
        status, body = await broken.call("GET", f"{V1}/settings")
        assert status == 200
        assert body["ffmpeg_in_use"] is None
        assert body["ffmpeg"].endswith("gone/ffmpeg")

    async def test_choosing_a_working_ffmpeg_brings_the_agent_to_life(self, broken: Broken) -> None:
        status, body = await broken.call("PATCH", f"{V1}/settings", {"ffmpeg": None})
        assert status == 200, body
        assert body["ffmpeg"] is None
        assert body["ffmpeg_in_use"]["path"] == str(broken.agent.ffmpeg.path)  # type: ignore[union-attr]
        assert broken.agent.relay is not None and broken.agent.ffmpeg_error is None
        await wait_listening(broken.ingest_port)  # the ingest runs with the new FFmpeg
        status, encoders = await broken.call("GET", f"{V1}/encoders")
        assert status == 200
        assert encoders["video"][0]["usable"] is True


# -- settings -------------------------------------------------------------------------------


class TestSettings:
    async def test_the_settings_the_ffmpeg_in_use_and_launch_at_login(
        self, api: Api, autostart: FakeAutostart
    ) -> None:
        body = await api.ok("GET", f"{V1}/settings")
        assert api.agent.ffmpeg is not None
        assert body == {
            "ffmpeg": None,
            "ffmpeg_in_use": {
                "path": str(api.agent.ffmpeg.path),
                "version": api.agent.ffmpeg.version,
            },
            "notifications": True,
            "api_port": api.port,
            "api_bind": "127.0.0.1",
            "autostart": {
                "supported": True,
                "enabled": False,
                "detail": "an entry in ~/.config/autostart",
            },
        }

    async def test_without_an_autostart_module_launch_at_login_is_unsupported(
        self, api: Api, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, AUTOSTART_MODULE, None)  # import raises ImportError
        body = await api.ok("GET", f"{V1}/settings")
        assert body["autostart"]["supported"] is False
        assert body["autostart"]["enabled"] is False
        assert body["autostart"]["detail"]
        error = await refused(api, "PATCH", f"{V1}/settings", {"autostart": True}, 409)
        assert "not supported" in error["message"]

    async def test_notifications_are_saved_and_followed(self, api: Api) -> None:
        api.agent.settings.api_port = 5555  # as `cascade run --port 5555` leaves it
        body = await api.ok("PATCH", f"{V1}/settings", {"notifications": False})
        assert body["notifications"] is False
        assert api.agent.settings.notifications is False
        saved = settings_file(api)
        assert saved is not None and saved["notifications"] is False
        assert saved["api_port"] == 47830, "a --port given at start is not written down"
        again = await api.ok("GET", f"{V1}/settings")
        assert again["notifications"] is False

    async def test_the_bundled_ffmpeg_by_its_path_is_accepted(self, api: Api) -> None:
        bundled = imageio_ffmpeg.get_ffmpeg_exe()
        body = await api.ok("PATCH", f"{V1}/settings", {"ffmpeg": bundled})
        assert body["ffmpeg"] == bundled
        assert body["ffmpeg_in_use"]["path"] == str(Path(bundled).absolute())
        saved = settings_file(api)
        assert saved is not None and saved["ffmpeg"] == bundled

    @pytest.mark.parametrize("blank", [None, "", "   "])
    async def test_null_or_blank_is_the_bundled_ffmpeg(self, api: Api, blank: str | None) -> None:
        body = await api.ok("PATCH", f"{V1}/settings", {"ffmpeg": blank})
        assert body["ffmpeg"] is None
        saved = settings_file(api)
        assert saved is not None and saved["ffmpeg"] is None

    @pytest.mark.parametrize(
        ("value", "says"),
        [
            pytest.param("/nonexistent/bin/ffmpeg", "does not exist", id="missing"),
            pytest.param("ffmpeg", "full path", id="bare-command"),
            pytest.param("bin/ffmpeg", "full path", id="relative"),
            pytest.param(sys.executable, "does not look like FFmpeg", id="not-ffmpeg"),
            pytest.param("/", "is a directory", id="a-folder"),
            pytest.param("/tmp/ff\x00mpeg", "not a path", id="nul"),
            pytest.param(12, "full path", id="a-number"),
        ],
    )
    async def test_an_ffmpeg_that_cannot_be_used_is_a_422_and_nothing_is_saved(
        self, api: Api, value: Any, says: str
    ) -> None:
        error = await refused(api, "PATCH", f"{V1}/settings", {"ffmpeg": value}, 422)
        assert error["field"] == "ffmpeg"
        assert says in error["message"]
        assert settings_file(api) is None
        assert api.agent.settings.ffmpeg is None

    async def test_an_ffmpeg_older_than_5_is_a_422(self, api: Api, tmp_path: Path) -> None:
        old = tmp_path / "ffmpeg"
        old.write_text("#!/bin/sh\necho 'ffmpeg version 4.4.2-0ubuntu0.22.04.1'\n")
        old.chmod(0o755)
        error = await refused(api, "PATCH", f"{V1}/settings", {"ffmpeg": str(old)}, 422)
        assert error["field"] == "ffmpeg"
        assert "too old" in error["message"]
        assert "full path" in error["hint"]

    async def test_another_ffmpeg_is_refused_while_live_and_used_at_once_when_idle(
        self, api: Api, tmp_path: Path
    ) -> None:
        other = tmp_path / "ffmpeg"  # the same program under another path: another binary
        other.symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
        await api.ok("POST", f"{V1}/groups/main/start")
        error = await refused(api, "PATCH", f"{V1}/settings", {"ffmpeg": str(other)}, 409)
        assert "live" in error["message"]
        assert settings_file(api) is None
        assert api.agent.ffmpeg is not None and api.agent.ffmpeg.path != other

        await api.ok("POST", f"{V1}/groups/main/stop")
        body = await api.ok("PATCH", f"{V1}/settings", {"ffmpeg": str(other)})
        assert body["ffmpeg_in_use"]["path"] == str(other)
        assert api.agent.relay is not None
        await wait_listening(api.agent.profile.ingest.port)
        encoders = await api.ok("GET", f"{V1}/encoders")
        assert encoders["ffmpeg"]["path"] == str(other)

    @pytest.mark.parametrize(
        ("body", "bad"),
        [
            pytest.param({"api_port": 8000}, "api_port", id="api-port-read-only"),
            pytest.param({"api_bind": "0.0.0.0"}, "api_bind", id="api-bind-read-only"),
            pytest.param({"colour": "blue"}, "colour", id="unknown"),
            pytest.param({"notifications": "yes"}, "notifications", id="not-a-bool"),
            pytest.param({"autostart": 1}, "autostart", id="autostart-not-a-bool"),
        ],
    )
    async def test_a_bad_setting_is_a_422_naming_it(
        self, api: Api, body: dict[str, Any], bad: str
    ) -> None:
        error = await refused(api, "PATCH", f"{V1}/settings", body, 422)
        assert error["field"] == bad
        assert settings_file(api) is None

    async def test_a_body_that_is_not_an_object_is_a_400(self, api: Api) -> None:
        await refused(api, "PATCH", f"{V1}/settings", ["notifications"], 400)

    async def test_launch_at_login_is_switched_on_and_off(
        self, api: Api, autostart: FakeAutostart
    ) -> None:
        on = await api.ok("PATCH", f"{V1}/settings", {"autostart": True})
        assert on["autostart"]["enabled"] is True
        off = await api.ok("PATCH", f"{V1}/settings", {"autostart": False})
        assert off["autostart"]["enabled"] is False
        assert autostart.calls == ["enable", "disable"]

    async def test_launch_at_login_where_unsupported_is_a_409_with_the_detail(
        self, api: Api, autostart: FakeAutostart
    ) -> None:
        autostart.supported = False
        error = await refused(api, "PATCH", f"{V1}/settings", {"autostart": True}, 409)
        assert "no desktop session" in error["message"]
        assert autostart.calls == []

    async def test_a_failing_switch_is_a_409_that_says_why(
        self, api: Api, autostart: FakeAutostart
    ) -> None:
        autostart.fail_with = "the autostart folder is not writable"
        error = await refused(api, "PATCH", f"{V1}/settings", {"autostart": True}, 409)
        assert "not writable" in error["message"]

    async def test_settings_need_the_token(self, api: Api) -> None:
        assert (await api.client.get(f"{V1}/settings")).status == 401
        resp = await api.client.patch(f"{V1}/settings", json={"notifications": False})
        assert resp.status == 401
        assert settings_file(api) is None


# -- platform presets -----------------------------------------------------------------------


class TestPlatforms:
    async def test_the_presets_the_form_offers(self, api: Api) -> None:
        body = await api.ok("GET", f"{V1}/platforms")
        by_id = {p["id"]: p for p in body["platforms"]}
        assert list(by_id) == ["youtube", "twitch", "kick", "facebook", "custom", "recording"]
        youtube = by_id["youtube"]
        assert youtube["label"] == "YouTube"
        assert youtube["default_url"] == "rtmps://a.rtmps.youtube.com:443/live2"
        assert youtube["backup_url"] and youtube["needs_key"] is True
        assert by_id["custom"]["default_url"] is None and by_id["custom"]["needs_key"] is False
        assert by_id["recording"]["needs_key"] is False
        assert all(p["url_hint"] and p["key_help"] for p in body["platforms"])

    async def test_each_presets_default_url_is_one_a_target_accepts(self, api: Api) -> None:
        body = await api.ok("GET", f"{V1}/platforms")
        for preset in body["platforms"]:
            if preset["default_url"] is None:
                continue
            target = {"id": f"p-{preset['id']}", "platform": preset["id"]}
            target["url"] = preset["default_url"]
            await api.ok("POST", f"{V1}/groups/main/targets", target, status=201)
        saved = {t["id"] for t in api.saved_group("main")["targets"]}
        assert {f"p-{p.value}" for p, x in PRESETS.items() if x.primary_url} <= saved


# -- profiles -------------------------------------------------------------------------------


class TestProfiles:
    async def test_a_new_profile_has_the_default_set_up_and_the_active_one_stays(
        self, api: Api
    ) -> None:
        body = await api.ok("POST", f"{V1}/profiles", {"name": "evening"}, status=201)
        assert body == {"active": "studio", "profiles": ["evening", "spare", "studio"]}
        saved = api.saved("evening")
        assert [g["id"] for g in saved["groups"]] == ["main"]
        assert api.agent.profile.name == "studio"

    async def test_a_copy_takes_the_set_up_and_the_stream_keys(
        self, api: Api, vault: VaultStore
    ) -> None:
        await api.ok("PUT", f"{V1}/targets/yt/key", {"key": STREAM_KEY}, status=204)
        await api.ok("POST", f"{V1}/profiles", {"name": "copy", "from": "studio"}, status=201)
        copy, original = api.saved("copy"), api.saved("studio")
        assert copy["groups"] == original["groups"]
        assert vault.get("copy", "yt") == STREAM_KEY
        assert STREAM_KEY not in api.store.path_of("copy").read_text("utf-8")

    @pytest.mark.parametrize(
        ("body", "status", "bad"),
        [
            pytest.param({"name": "studio"}, 409, None, id="taken"),
            pytest.param({"name": "Not A Slug"}, 422, "name", id="bad-name"),
            pytest.param({}, 422, "name", id="no-name"),
            pytest.param({"name": "x", "from": "nope"}, 422, "from", id="unknown-source"),
            pytest.param({"name": "x", "from": 5}, 422, "from", id="source-not-text"),
            pytest.param({"name": "x", "colour": 1}, 422, "colour", id="unknown-key"),
        ],
    )
    async def test_a_bad_create_is_refused_and_nothing_is_written(
        self, api: Api, body: dict[str, Any], status: int, bad: str | None
    ) -> None:
        error = await refused(api, "POST", f"{V1}/profiles", body, status)
        if bad is not None:
            assert error["field"] == bad
        assert api.store.list() == ["spare", "studio"]

    async def test_deleting_a_profile_removes_it_and_its_keys(
        self, api: Api, vault: VaultStore
    ) -> None:
        await api.ok("PUT", f"{V1}/targets/yt/key", {"key": STREAM_KEY}, status=204)
        await api.ok("POST", f"{V1}/profiles", {"name": "copy", "from": "studio"}, status=201)
        await api.ok("DELETE", f"{V1}/profiles/copy", status=204)
        listed = await api.ok("GET", f"{V1}/profiles")
        assert listed["profiles"] == ["spare", "studio"]
        assert not api.store.path_of("copy").exists()
        assert vault.get("copy", "yt") is None
        assert vault.get("studio", "yt") == STREAM_KEY
        assert api.saved("studio")["groups"][1]["targets"][0]["key_ref"] == KEYRING_REF

    async def test_the_active_profile_cannot_be_deleted(self, api: Api) -> None:
        error = await refused(api, "DELETE", f"{V1}/profiles/studio", None, 409)
        assert "active" in error["message"]
        assert api.store.path_of("studio").exists()

    async def test_an_unknown_profile_is_a_404(self, api: Api) -> None:
        await refused(api, "DELETE", f"{V1}/profiles/nope", None, 404)
