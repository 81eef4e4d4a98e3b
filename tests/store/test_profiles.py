"""The profile store: a first run, create / rename / duplicate / delete / use, damaged files that
cost nothing, newer files left alone, and settings on the same atomic footing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.core.model import (
    Group,
    GroupMode,
    IngestKind,
    Platform,
    Profile,
    Target,
    VideoSettings,
)
from agent.core.settings import Settings, load_settings
from agent.core.validate import ValidationError
from agent.store.atomic import StoreError, backup_path
from agent.store.codec import SCHEMA_VERSION, NewerSchema
from agent.store.profiles import (
    ProfileExists,
    ProfileStore,
    UnknownProfile,
    default_profile,
)

SECRET = "live_987654_SECRETkeyNeverOnDisk"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "config"


@pytest.fixture
def store(config: Path) -> ProfileStore:
    """A store after its first run: the default profile exists and is active."""
    store = ProfileStore(config)
    store.load_active()
    return store


def with_targets(name: str) -> Profile:
    return Profile(
        name=name,
        groups=[
            Group(
                id="main",
                targets=[
                    Target("twitch", Platform.TWITCH, key=SECRET, key_ref="keyring"),
                    Target("own", url="rtmp://example.com/live", key_ref="${OWN_KEY}"),
                ],
            ),
            Group(
                id="720p",
                mode=GroupMode.REENCODE,
                video=VideoSettings(width=1280, height=720, bitrate_kbps=3000),
            ),
        ],
    )


def all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


class TestFirstRun:
    def test_creating_a_store_touches_nothing(self, config: Path) -> None:
        ProfileStore(config)
        assert not config.exists()

    def test_the_first_run_creates_and_activates_the_default_profile(self, config: Path) -> None:
        store = ProfileStore(config)

        profile = store.load_active()

        assert profile.name == "default"
        assert profile.ingest.kind is IngestKind.RTMP
        assert profile.ingest.obs_url == "rtmp://127.0.0.1:1935/live"
        assert [(g.id, g.mode, g.targets) for g in profile.groups] == [
            ("main", GroupMode.PASSTHROUGH, [])
        ]
        assert store.list() == ["default"]
        assert store.active_name == "default"
        assert (config / "profiles" / "default.json").is_file()
        assert json.loads((config / "state.json").read_text()) == {"active": "default"}
        assert store.warnings == []

    def test_the_next_run_loads_what_the_first_saved(self, store: ProfileStore) -> None:
        again = ProfileStore(store.config_dir)
        assert again.load_active() == default_profile()
        assert again.warnings == []


class TestCrud:
    def test_a_saved_profile_loads_back_without_its_keys(self, store: ProfileStore) -> None:
        store.create("stream", from_profile=with_targets("anything"))

        loaded = ProfileStore(store.config_dir).load("stream")

        expected = with_targets("stream")
        expected.groups[0].targets[0].key = None
        assert loaded == expected

    def test_no_stream_key_reaches_any_file(self, store: ProfileStore) -> None:
        profile = with_targets("default")
        store.save(profile)
        store.save(profile)  # a backup too
        store.duplicate("default", "copy")

        assert SECRET.encode() not in all_bytes(store.config_dir)

    def test_create_starts_from_the_default_profile(self, store: ProfileStore) -> None:
        created = store.create("gaming")

        assert created == default_profile("gaming")
        assert store.list() == ["default", "gaming"]
        assert store.active_name == "default"  # creating does not switch

    def test_create_refuses_a_taken_name(self, store: ProfileStore) -> None:
        with pytest.raises(ProfileExists, match="a profile named 'default' already exists"):
            store.create("default")

    @pytest.mark.parametrize("name", ["My Profile", "", "../escape", "UPPER", "x" * 33])
    def test_names_are_slugs(self, store: ProfileStore, name: str) -> None:
        with pytest.raises(ValidationError) as caught:
            store.create(name)
        assert caught.value.field == "name"
        assert store.list() == ["default"]

    def test_an_invalid_profile_is_refused_and_nothing_is_written(
        self, store: ProfileStore
    ) -> None:
        before = all_bytes(store.config_dir)
        broken = default_profile()
        broken.groups.append(Group(id="main"))  # a duplicate id

        with pytest.raises(ValidationError, match="already used"):
            store.save(broken)

        assert all_bytes(store.config_dir) == before

    def test_duplicate_copies_everything_but_the_name(self, store: ProfileStore) -> None:
        store.create("stream", from_profile=with_targets("stream"))

        copied = store.duplicate("stream", "stream-2")

        original = store.load("stream")
        original.name = "stream-2"
        assert copied == store.load("stream-2")
        assert store.load("stream-2") == original

    def test_rename_moves_the_profile_and_the_active_mark(self, store: ProfileStore) -> None:
        store.save(with_targets("default"))

        renamed = store.rename("default", "main-setup")

        assert store.list() == ["main-setup"]
        assert store.active_name == "main-setup"
        assert ProfileStore(store.config_dir).active_name == "main-setup"
        assert renamed.name == "main-setup"
        assert store.load("main-setup").groups[0].targets[0].id == "twitch"
        assert not (store.profiles_dir / "default.json").exists()
        assert not backup_path(store.profiles_dir / "default.json").exists()

    def test_rename_of_an_inactive_profile_leaves_the_active_one(self, store: ProfileStore) -> None:
        store.create("b")
        store.rename("b", "c")
        assert (store.list(), store.active_name) == (["c", "default"], "default")

    def test_rename_refuses_a_taken_name(self, store: ProfileStore) -> None:
        store.create("other")
        with pytest.raises(ProfileExists):
            store.rename("default", "other")
        assert store.list() == ["default", "other"]

    def test_use_switches_and_is_remembered(self, store: ProfileStore) -> None:
        store.create("gaming", from_profile=with_targets("x"))

        used = store.use("gaming")

        assert used.name == "gaming"
        again = ProfileStore(store.config_dir)
        assert again.active_name == "gaming"
        assert again.load_active().groups[1].id == "720p"

    def test_delete_removes_an_inactive_profile(self, store: ProfileStore) -> None:
        store.create("old")

        store.delete("old")

        assert store.list() == ["default"]
        assert not any(p.name.startswith("old.") for p in store.profiles_dir.iterdir())

    def test_deleting_the_active_profile_activates_another(self, store: ProfileStore) -> None:
        store.create("backup-plan")

        store.delete("default")

        assert store.list() == ["backup-plan"]
        assert ProfileStore(store.config_dir).active_name == "backup-plan"

    def test_the_last_profile_cannot_be_deleted(self, store: ProfileStore) -> None:
        with pytest.raises(StoreError, match="only profile and cannot be deleted"):
            store.delete("default")
        assert store.list() == ["default"]

    @pytest.mark.parametrize("operation", ["load", "use", "delete", "rename", "duplicate"])
    def test_an_unknown_profile_is_named_with_the_known_ones(
        self, store: ProfileStore, operation: str
    ) -> None:
        calls: dict[str, Callable[[], object]] = {
            "load": lambda: store.load("nope"),
            "use": lambda: store.use("nope"),
            "delete": lambda: store.delete("nope"),
            "rename": lambda: store.rename("nope", "new"),
            "duplicate": lambda: store.duplicate("nope", "new"),
        }
        with pytest.raises(UnknownProfile) as caught:
            calls[operation]()
        assert str(caught.value) == "there is no profile 'nope'. Known profiles: default"
        assert store.list() == ["default"]


class TestDamage:
    def test_a_damaged_profile_starts_from_its_backup(self, store: ProfileStore) -> None:
        store.save(with_targets("default"))
        store.save(with_targets("default"))  # the backup now holds the targets too
        path = store.path_of("default")
        path.write_bytes(b'{"schema_version": 1, "groups": [{"id": "ma')

        again = ProfileStore(store.config_dir)
        profile = again.load_active()

        assert [t.id for t in profile.groups[0].targets] == ["twitch", "own"]
        assert len(again.warnings) == 1
        assert again.warnings[0].startswith("profiles/default.json was damaged (it is not valid")
        assert "Cascade started from the backup of" in again.warnings[0]
        kept = [p for p in store.profiles_dir.iterdir() if ".corrupt-" in p.name]
        assert len(kept) == 1 and kept[0].read_bytes().startswith(b'{"schema_version": 1')

    def test_a_profile_with_wrong_types_is_damage_too(self, store: ProfileStore) -> None:
        data = json.loads(store.path_of("default").read_text())
        data["groups"][0]["video"]["bitrate_kbps"] = "fast"
        store.path_of("default").write_text(json.dumps(data))

        again = ProfileStore(store.config_dir)
        again.load_active()

        wanted = 'groups[0].video.bitrate_kbps: expected a whole number, got "fast"'
        assert wanted in again.warnings[0]

    def test_without_a_backup_the_agent_starts_on_a_default_profile(
        self, store: ProfileStore
    ) -> None:
        store.path_of("default").write_text("[]")

        again = ProfileStore(store.config_dir)
        profile = again.load_active()

        assert profile == default_profile()
        assert "has no backup; Cascade started from the defaults" in again.warnings[0]

    def test_a_damaged_state_file_falls_back_to_the_default_profile(
        self, store: ProfileStore
    ) -> None:
        store.create("other")
        store.state_path.write_text('{"active": 42}')

        again = ProfileStore(store.config_dir)

        assert again.active_name == "default"
        assert again.load_active().name == "default"
        assert again.warnings[0].startswith(
            "state.json was damaged (active: expected a profile name, got 42) and has no backup"
        )

    def test_an_active_profile_that_vanished_falls_back_with_a_warning(
        self, store: ProfileStore
    ) -> None:
        store.create("other")
        store.state_path.write_text('{"active": "gone"}')

        again = ProfileStore(store.config_dir)

        assert again.load_active().name == "default"
        assert again.warnings == [
            "The active profile 'gone' was not found; Cascade uses 'default' instead."
        ]

    def test_unknown_keys_are_reported_once(self, store: ProfileStore) -> None:
        data = json.loads(store.path_of("default").read_text())
        data["colour"] = "blue"
        store.path_of("default").write_text(json.dumps(data))

        again = ProfileStore(store.config_dir)
        again.load("default")
        again.load("default")

        assert again.warnings == ["Profile 'default': colour: unknown setting, ignored."]


class TestNewerSchema:
    @pytest.fixture
    def newer(self, store: ProfileStore) -> bytes:
        data = json.loads(store.path_of("default").read_text())
        data["schema_version"] = SCHEMA_VERSION + 1
        data["holograms"] = {"enabled": True}
        raw = json.dumps(data).encode()
        store.path_of("default").write_bytes(raw)
        return raw

    def test_a_profile_from_a_newer_cascade_is_refused(
        self, store: ProfileStore, newer: bytes
    ) -> None:
        again = ProfileStore(store.config_dir)

        with pytest.raises(NewerSchema) as caught:
            again.load_active()

        assert str(caught.value).startswith(
            f"profile 'default' ({store.path_of('default')}): it was saved by a newer version"
        )
        assert store.path_of("default").read_bytes() == newer
        assert not [p for p in store.profiles_dir.iterdir() if ".corrupt-" in p.name]

    def test_it_is_never_overwritten(self, store: ProfileStore, newer: bytes) -> None:
        with pytest.raises(NewerSchema):
            store.save(default_profile())
        assert store.path_of("default").read_bytes() == newer


class TestSettings:
    def test_settings_round_trip_with_a_backup(self, store: ProfileStore) -> None:
        store.save_settings(Settings(ffmpeg="/opt/ffmpeg/bin/ffmpeg", api_port=50000))
        store.save_settings(Settings(api_port=50001))

        assert store.load_settings() == Settings(api_port=50001)
        assert backup_path(store.config_dir / "settings.json").is_file()

    def test_no_settings_file_means_the_defaults(self, store: ProfileStore) -> None:
        assert store.load_settings() == Settings()
        assert store.warnings == []

    def test_damaged_settings_fall_back_and_are_kept_aside(self, store: ProfileStore) -> None:
        store.save_settings(Settings(api_port=50000))
        store.save_settings(Settings(api_port=50001))
        (store.config_dir / "settings.json").write_text('{"api_port": "high"}')

        settings = store.load_settings()

        assert settings == Settings(api_port=50000)
        wanted = "settings.json was damaged (api_port: expected a port number"
        assert store.warnings[0].startswith(wanted)
        assert list(store.config_dir.glob("settings.json.corrupt-*"))

    def test_the_core_loader_reads_through_the_same_path(self, config: Path) -> None:
        config.mkdir()
        (config / "settings.json").write_text("{not json")

        assert load_settings(config) == Settings()
        assert list(config.glob("settings.json.corrupt-*"))
