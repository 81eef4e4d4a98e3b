"""Profiles to and from JSON: a lossless round trip without the stream keys, migrations from
older layouts, newer layouts refused, and wrong values named by their field."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from agent.core.model import (
    AudioSettings,
    Group,
    GroupMode,
    IngestKind,
    IngestSettings,
    Platform,
    Profile,
    Target,
    VideoSettings,
)
from agent.core.validate import ValidationError
from agent.store.codec import (
    MIGRATIONS,
    SCHEMA_VERSION,
    NewerSchema,
    env_key_ref,
    migrate,
    profile_from_dict,
    profile_to_dict,
)

YT_KEY = "yt-SECRET-4f1c-99aa"
TWITCH_KEY = "live_123456_SECRETtwitch"


def rich_profile() -> Profile:
    """Every platform, both group modes, key references of each kind, non-default values."""
    return Profile(
        name="weekend",
        ingest=IngestSettings(
            kind=IngestKind.SRT, bind="0.0.0.0", port=9000, srt_latency_ms=200, key="obs-only"
        ),
        groups=[
            Group(
                id="main",
                name="Source quality",
                armed=True,
                targets=[
                    Target(
                        "youtube",
                        Platform.YOUTUBE,
                        name="YouTube",
                        key=YT_KEY,
                        key_ref="keyring",
                        backup=True,
                    ),
                    Target("twitch", Platform.TWITCH, key=TWITCH_KEY, key_ref="${TWITCH_KEY}"),
                    Target("facebook", Platform.FACEBOOK, key_ref="${FB_STREAM_KEY}"),
                    Target(
                        "own-srt",
                        Platform.CUSTOM,
                        url="srt://relay.example.com:9000?latency=200000",
                        enabled=False,
                    ),
                    Target("rec", Platform.RECORDING, name="Local copy", url="~/Videos/"),
                ],
            ),
            Group(
                id="720p",
                name="720p for Kick",
                mode=GroupMode.REENCODE,
                video=VideoSettings(
                    width=1280,
                    height=720,
                    fps=30.0,
                    bitrate_kbps=3000,
                    keyframe_interval_s=1.0,
                    preset="faster",
                    profile="main",
                ),
                audio=AudioSettings(codec="aac", bitrate_kbps=128, sample_rate=48000, channels=2),
                targets=[Target("kick", Platform.KICK, key_ref="keyring")],
            ),
        ],
    )


def without_keys(profile: Profile) -> Profile:
    copied = copy.deepcopy(profile)
    for group in copied.groups:
        for target in group.targets:
            target.key = None
    return copied


def stored(profile: Profile) -> dict[str, Any]:
    """What goes to disk, through real JSON text."""
    loaded = json.loads(json.dumps(profile_to_dict(profile)))
    assert isinstance(loaded, dict)
    return loaded


class TestRoundTrip:
    def test_the_rich_profile_covers_every_platform(self) -> None:
        platforms = {t.platform for g in rich_profile().groups for t in g.targets}
        assert platforms == set(Platform)

    def test_a_profile_comes_back_equal_except_its_stream_keys(self) -> None:
        profile = rich_profile()

        loaded = profile_from_dict(stored(profile), warnings=[])

        assert loaded == without_keys(profile)
        assert loaded != profile  # the keys did not come back

    def test_no_stream_key_is_ever_written(self) -> None:
        data = profile_to_dict(rich_profile())

        for group in data["groups"]:
            for target in group["targets"]:
                assert "key" not in target
        text = json.dumps(data)
        assert YT_KEY not in text and TWITCH_KEY not in text

    def test_only_where_the_key_lives_is_written(self) -> None:
        data = profile_to_dict(rich_profile())

        refs = {t["id"]: t["key_ref"] for g in data["groups"] for t in g["targets"]}
        assert refs == {
            "youtube": "keyring",
            "twitch": "${TWITCH_KEY}",
            "facebook": "${FB_STREAM_KEY}",
            "own-srt": None,
            "rec": None,
            "kick": "keyring",
        }

    def test_the_file_carries_the_schema_version_first(self) -> None:
        data = profile_to_dict(rich_profile())
        assert next(iter(data)) == "schema_version"
        assert data["schema_version"] == SCHEMA_VERSION == 1

    def test_enums_are_written_as_their_names(self) -> None:
        data = profile_to_dict(rich_profile())
        assert data["ingest"]["kind"] == "srt"
        assert data["groups"][1]["mode"] == "reencode"
        assert data["groups"][0]["targets"][0]["platform"] == "youtube"

    def test_reading_leaves_its_input_unchanged(self) -> None:
        data = stored(rich_profile())
        before = copy.deepcopy(data)
        profile_from_dict(data, warnings=[])
        assert data == before


def edit(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = stored(rich_profile())
    change(data)
    return data


def set_at(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """A change that sets ``value`` at a dotted path such as ``groups.1.video.bitrate_kbps``."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return change


class TestWrongValues:
    @pytest.mark.parametrize(
        ("path", "value", "message"),
        [
            pytest.param(
                "groups.1.video.bitrate_kbps",
                "fast",
                'groups[1].video.bitrate_kbps: expected a whole number, got "fast"',
                id="text-for-a-number",
            ),
            pytest.param(
                "ingest.port", True, "ingest.port: expected a whole number, got true", id="bool"
            ),
            pytest.param(
                "groups.1.video.fps", "30", 'groups[1].video.fps: expected a number, got "30"'
            ),
            pytest.param(
                "groups.0.targets.2.enabled",
                "yes",
                'groups[0].targets[2].enabled: expected true or false, got "yes"',
            ),
            pytest.param("groups", {}, "groups: expected a list, got an object"),
            pytest.param("ingest", [1], "ingest: expected an object, got a list"),
            pytest.param(
                "groups.0.mode",
                "turbo",
                'groups[0].mode: expected one of "passthrough", "reencode", got "turbo"',
            ),
            pytest.param(
                "groups.0.targets.0.platform",
                "myspace",
                "groups[0].targets[0].platform: expected one of",
            ),
            pytest.param(
                "groups.0.targets.3.url",
                12345,
                "groups[0].targets[3].url: expected text, got a number",
                id="url-never-quoted",
            ),
            pytest.param("groups.1.video.width", None, None, id="null-is-allowed-where-optional"),
        ],
    )
    def test_a_wrong_type_names_its_field(
        self, path: str, value: object, message: str | None
    ) -> None:
        data = edit(set_at(path, value))
        if message is None:
            profile_from_dict(data, warnings=[])
            return

        with pytest.raises(ValidationError) as caught:
            profile_from_dict(data, warnings=[])

        assert str(caught.value).startswith(message)
        assert caught.value.field == message.partition(":")[0]

    def test_a_missing_id_is_named(self) -> None:
        data = edit(lambda d: d["groups"][1]["targets"][0].pop("id"))

        with pytest.raises(ValidationError, match=r"^groups\[1\]\.targets\[0\]\.id: is missing"):
            profile_from_dict(data, warnings=[])

    def test_a_key_pasted_where_its_reference_belongs_is_refused_unquoted(self) -> None:
        data = edit(set_at("groups.0.targets.0.key_ref", YT_KEY))

        with pytest.raises(ValidationError) as caught:
            profile_from_dict(data, warnings=[])

        assert caught.value.field == "groups[0].targets[0].key_ref"
        assert '"keyring" or "${ENV_VAR}"' in str(caught.value)
        assert YT_KEY not in str(caught.value)

    def test_the_profile_is_validated_after_decoding(self) -> None:
        data = edit(set_at("groups.1.targets.0.id", "main"))  # the group's id again

        with pytest.raises(ValidationError, match="already used by a group"):
            profile_from_dict(data, warnings=[])

    def test_values_out_of_range_are_refused_by_validation(self) -> None:
        data = edit(set_at("groups.1.video.bitrate_kbps", 5))

        with pytest.raises(ValidationError) as caught:
            profile_from_dict(data, warnings=[])

        assert caught.value.field == "groups[720p].video.bitrate_kbps"

    def test_something_other_than_an_object_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="expected an object"):
            profile_from_dict([1, 2], warnings=[])


class TestUnknownKeys:
    def test_unknown_keys_are_ignored_with_a_warning(self) -> None:
        def add(data: dict[str, Any]) -> None:
            data["theme"] = "dark"
            data["groups"][0]["colour"] = "#f00"

        warnings: list[str] = []
        profile = profile_from_dict(edit(add), warnings=warnings)

        assert profile == without_keys(rich_profile())
        assert warnings == [
            "theme: unknown setting, ignored",
            "groups[0].colour: unknown setting, ignored",
        ]

    def test_a_stream_key_found_in_the_file_is_dropped_and_never_repeated(self) -> None:
        warnings: list[str] = []
        profile = profile_from_dict(
            edit(set_at("groups.0.targets.0.key", YT_KEY)), warnings=warnings
        )

        assert profile.groups[0].targets[0].key is None
        assert len(warnings) == 1
        assert "a stream key was found in the profile file and ignored" in warnings[0]
        assert YT_KEY not in warnings[0]

    def test_without_a_list_the_warnings_are_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.WARNING, logger="agent.store.codec"):
            profile_from_dict(edit(set_at("theme", "dark")))

        assert "profile 'weekend': theme: unknown setting, ignored" in caplog.text


VERSION_0 = {
    "name": "old",
    "ingest": {"port": 1936},
    "groups": [
        {
            "id": "main",
            "targets": [
                {"id": "youtube", "platform": "youtube", "stream_key_in_keyring": True},
                {"id": "twitch", "platform": "twitch", "stream_key_env": "TWITCH_KEY"},
                {"id": "nokey", "url": "rtmp://example.com/live/stream"},
            ],
        },
        {
            "id": "720p",
            "encode": {
                "video": {"width": 1280, "height": 720, "bitrate_kbps": 3000},
                "audio": {"codec": "aac"},
            },
            "targets": [{"id": "rec", "platform": "recording", "url": "~/Videos/"}],
        },
    ],
}


class TestMigrations:
    def test_every_older_version_has_a_step(self) -> None:
        assert set(MIGRATIONS) == set(range(SCHEMA_VERSION))

    def test_a_version_0_file_loads_as_the_current_model(self) -> None:
        warnings: list[str] = []
        profile = profile_from_dict(VERSION_0, warnings=warnings)

        assert warnings == []
        assert profile == Profile(
            name="old",
            ingest=IngestSettings(port=1936),
            groups=[
                Group(
                    id="main",
                    mode=GroupMode.PASSTHROUGH,
                    targets=[
                        Target("youtube", Platform.YOUTUBE, key_ref="keyring"),
                        Target("twitch", Platform.TWITCH, key_ref="${TWITCH_KEY}"),
                        Target("nokey", url="rtmp://example.com/live/stream"),
                    ],
                ),
                Group(
                    id="720p",
                    mode=GroupMode.REENCODE,
                    video=VideoSettings(width=1280, height=720, bitrate_kbps=3000),
                    audio=AudioSettings(codec="aac"),
                    targets=[Target("rec", Platform.RECORDING, url="~/Videos/")],
                ),
            ],
        )

    def test_an_explicit_version_0_migrates_too(self) -> None:
        profile = profile_from_dict({**VERSION_0, "schema_version": 0}, warnings=[])
        assert profile.groups[1].mode is GroupMode.REENCODE

    def test_a_migrated_profile_is_saved_in_the_current_layout(self) -> None:
        data = profile_to_dict(profile_from_dict(VERSION_0, warnings=[]))

        assert data["schema_version"] == SCHEMA_VERSION
        assert "encode" not in data["groups"][1]
        assert "stream_key_env" not in data["groups"][0]["targets"][1]

    def test_migrating_leaves_its_input_unchanged(self) -> None:
        before = copy.deepcopy(VERSION_0)
        migrated = migrate(VERSION_0)
        assert before == VERSION_0
        assert migrated["schema_version"] == SCHEMA_VERSION

    def test_a_current_file_passes_through_untouched(self) -> None:
        data = stored(rich_profile())
        assert migrate(data) == data


class TestSchemaVersion:
    def test_a_file_from_a_newer_cascade_is_refused(self) -> None:
        data = edit(set_at("schema_version", SCHEMA_VERSION + 1))

        with pytest.raises(NewerSchema) as caught:
            profile_from_dict(data, warnings=[])

        assert caught.value.found == SCHEMA_VERSION + 1
        assert str(caught.value) == (
            "it was saved by a newer version of Cascade (profile schema 2; this version reads "
            "up to 1). Update Cascade to use it; the file was left untouched"
        )

    @pytest.mark.parametrize("version", ["1", -1, 1.5, True])
    def test_a_version_that_is_not_a_whole_number_is_refused(self, version: object) -> None:
        with pytest.raises(ValidationError) as caught:
            profile_from_dict(edit(set_at("schema_version", version)), warnings=[])
        assert caught.value.field == "schema_version"


class TestKeyRefs:
    def test_an_environment_reference_is_spelled_with_braces(self) -> None:
        assert env_key_ref("YOUTUBE_KEY") == "${YOUTUBE_KEY}"

    @pytest.mark.parametrize("name", ["1ST", "WITH SPACE", "", "A}B"])
    def test_an_impossible_variable_name_is_refused(self, name: str) -> None:
        with pytest.raises(ValidationError, match="environment variable"):
            env_key_ref(name)
