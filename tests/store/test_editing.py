"""Profile edits: validated like a loaded file, refused without changing anything."""

from __future__ import annotations

import pytest

from agent.core.model import GroupMode, Platform, Profile
from agent.core.validate import ValidationError
from agent.errors import CascadeError
from agent.media.capabilities import Capabilities, probe_capabilities
from agent.media.ffmpeg import find_ffmpeg
from agent.store.codec import profile_to_dict
from agent.store.editing import (
    add_group,
    add_target,
    edit_group,
    edit_target,
    remove_group,
    remove_target,
)
from agent.store.profiles import default_profile


@pytest.fixture(scope="module")
def caps(tmp_path_factory: pytest.TempPathFactory) -> Capabilities:
    return probe_capabilities(find_ffmpeg(), cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture
def profile() -> Profile:
    base = default_profile()
    base = add_target(base, "main", {"id": "twitch", "platform": "twitch", "key_ref": "keyring"})
    return base


def test_a_reencode_group_is_added_with_its_settings(profile: Profile, caps: Capabilities) -> None:
    spec = {
        "id": "720p",
        "name": "720p copy",
        "mode": "reencode",
        "video": {
            "codec": "libx264",
            "width": 1280,
            "height": 720,
            "fps": 30,
            "bitrate_kbps": 3000,
        },
        "audio": {"codec": "aac", "bitrate_kbps": 128},
    }
    edited = add_group(profile, spec, caps)
    group = edited.group("720p")
    assert group.mode is GroupMode.REENCODE
    assert (group.video.width, group.video.height, group.video.bitrate_kbps) == (1280, 720, 3000)
    assert group.audio.codec == "aac"
    assert [g.id for g in profile.groups] == ["main"], "the original changed"


def test_editing_video_settings_merges_them(profile: Profile, caps: Capabilities) -> None:
    edited = add_group(profile, {"id": "720p", "mode": "reencode", "video": {"width": 1280}}, caps)
    edited = edit_group(edited, "720p", {"video": {"bitrate_kbps": 2500}}, caps)
    video = edited.group("720p").video
    assert (video.width, video.bitrate_kbps) == (1280, 2500)


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        pytest.param({"id": "Main Stream"}, "id", "not a valid id", id="not-a-slug"),
        pytest.param({"id": "twitch"}, "id", "already used", id="duplicate-of-a-target"),
        pytest.param({"id": "x", "mode": "transcode"}, "mode", "one of", id="unknown-mode"),
        pytest.param(
            {"id": "x", "mode": "reencode", "video": {"codec": "h264_nvenc"}},
            "video.codec",
            "libcuda",
            id="unusable-encoder",
        ),
        pytest.param(
            {"id": "x", "mode": "reencode", "video": {"bitrate_kbps": "fast"}},
            "video.bitrate_kbps",
            "whole number",
            id="wrong-type",
        ),
        pytest.param(
            {"id": "x", "mode": "reencode", "video": {"width": 1281}},
            "video.width",
            "",
            id="odd-width",
        ),
        pytest.param({"id": "x", "bitrate": 3000}, "bitrate", "unknown setting", id="typo"),
    ],
)
def test_a_bad_group_is_refused_naming_the_field(
    profile: Profile, caps: Capabilities, spec: dict[str, object], field: str, words: str
) -> None:
    before = profile_to_dict(profile)
    with pytest.raises(ValidationError) as err:
        add_group(profile, spec, caps)
    assert err.value.field.endswith(field)
    assert words in str(err.value)
    assert profile_to_dict(profile) == before


def test_a_target_is_added_edited_and_removed(profile: Profile) -> None:
    edited = add_target(
        profile,
        "main",
        {"id": "own", "platform": "custom", "url": "rtmps://live.example.com:443/app"},
    )
    edited = edit_target(edited, "own", {"enabled": False, "key_ref": "${OWN_KEY}"})
    _, target = edited.target("own")
    assert target.platform is Platform.CUSTOM and not target.enabled
    assert target.key_ref == "${OWN_KEY}"
    edited = remove_target(edited, "own")
    assert "own" not in edited.ids()


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        pytest.param({"id": "x", "url": "rtmp//nohost"}, "target 'x'", id="malformed-url"),
        pytest.param({"id": "x", "platform": "myspace"}, "one of", id="unknown-platform"),
        pytest.param({"id": "x", "key": "live_abc"}, "never part of a profile", id="inline-key"),
        pytest.param({"id": "x", "key_ref": "$TWITCH"}, "key_ref", id="bad-key-ref"),
    ],
)
def test_a_bad_target_is_refused(profile: Profile, spec: dict[str, object], words: str) -> None:
    before = profile_to_dict(profile)
    with pytest.raises(CascadeError) as err:
        add_target(profile, "main", spec)
    assert words in str(err.value) or words in getattr(err.value, "field", "")
    assert "live_abc" not in str(err.value)
    assert profile_to_dict(profile) == before


def test_unknown_ids_are_refused_naming_the_known_ones(profile: Profile) -> None:
    with pytest.raises(CascadeError, match="there is no group 'nope'"):
        add_target(profile, "nope", {"id": "x"})
    with pytest.raises(CascadeError, match=r"there is no target 'nope'.*twitch"):
        edit_target(profile, "nope", {"enabled": False})
    with pytest.raises(CascadeError, match="there is no group 'nope'"):
        remove_group(profile, "nope")


def test_removing_a_group_removes_its_targets(profile: Profile) -> None:
    edited = remove_group(profile, "main")
    assert edited.groups == [] and "twitch" not in edited.ids()
