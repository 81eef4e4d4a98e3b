"""Relay operations refuse bad input with a clear error and change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.core.events import EventBus
from agent.core.model import Group, GroupMode, Platform, Profile, Target, VideoSettings
from agent.core.relay import Relay
from agent.core.states import ProcessState
from agent.errors import CascadeError, ConfigError
from agent.media.capabilities import Capabilities, probe_capabilities
from agent.media.ffmpeg import find_ffmpeg


@pytest.fixture(scope="module")
def caps(tmp_path_factory: pytest.TempPathFactory) -> Capabilities:
    return probe_capabilities(find_ffmpeg(), cache_dir=tmp_path_factory.mktemp("cache"))


def relay_for(*groups: Group, caps: Capabilities | None = None) -> Relay:
    return Relay(Profile(groups=list(groups)), ffmpeg="ffmpeg", bus=EventBus(), capabilities=caps)


def good_target(target_id: str = "custom") -> Target:
    return Target(id=target_id, url="rtmp://127.0.0.1:1936/live", key="k")


def nothing_started(relay: Relay) -> bool:
    for group in relay.groups.values():
        if group.live or group.group.armed:
            return False
        for push in group.pushes.values():
            if push.supervisor.state is not ProcessState.STOPPED:
                return False
        if group.encoder is not None and group.encoder.state is not ProcessState.STOPPED:
            return False
    return True


@pytest.mark.parametrize("operation", ["start_group", "stop_group", "toggle_group", "arm_group"])
async def test_an_unknown_group_is_refused_naming_the_known_ones(operation: str) -> None:
    relay = relay_for(Group(id="main", targets=[good_target()]), Group(id="720p"))
    with pytest.raises(CascadeError) as err:
        await getattr(relay, operation)("youtube")
    assert "there is no group 'youtube'" in str(err.value)
    assert "720p, main" in str(err.value)
    assert nothing_started(relay)


@pytest.mark.parametrize("operation", ["enable_target", "disable_target", "toggle_target"])
async def test_an_unknown_target_is_refused(operation: str) -> None:
    relay = relay_for(Group(id="main", targets=[good_target("twitch")]))
    with pytest.raises(CascadeError, match=r"there is no target 'kick'.*twitch"):
        await getattr(relay, operation)("kick")
    assert relay.profile.target("twitch")[1].enabled


async def test_an_unknown_encoder_is_refused(caps: Capabilities) -> None:
    group = Group(
        id="720p",
        mode=GroupMode.REENCODE,
        video=VideoSettings(codec="x264"),
        targets=[good_target()],
    )
    relay = relay_for(group, caps=caps)
    with pytest.raises(ConfigError, match=r"unknown encoder 'x264'.*libx264"):
        await relay.start_group("720p")
    assert nothing_started(relay)


async def test_an_encoder_the_probe_found_unusable_is_refused_with_the_reason(
    caps: Capabilities,
) -> None:
    group = Group(
        id="720p",
        mode=GroupMode.REENCODE,
        video=VideoSettings(codec="h264_nvenc"),
        targets=[good_target()],
    )
    relay = relay_for(group, caps=caps)
    with pytest.raises(ConfigError) as err:
        await relay.start_group("720p")
    assert "h264_nvenc" in str(err.value) and "libcuda" in str(err.value)
    assert nothing_started(relay)


async def test_a_malformed_url_is_refused_naming_the_target() -> None:
    bad = Target(id="custom", url="rtmp//missing-colon/live", key="k")
    relay = relay_for(Group(id="main", targets=[bad]))
    with pytest.raises(ConfigError, match="target 'custom'"):
        await relay.start_group("main")
    assert nothing_started(relay)


async def test_a_target_without_a_key_stops_start_all_before_anything_starts() -> None:
    relay = relay_for(
        Group(id="main", targets=[good_target()]),
        Group(id="yt", targets=[Target(id="youtube", platform=Platform.YOUTUBE)]),
    )
    with pytest.raises(ConfigError) as err:
        await relay.start_all()
    assert "target 'youtube'" in str(err.value) and "key" in str(err.value)
    assert nothing_started(relay)


async def test_enabling_a_keyless_target_in_a_live_group_is_refused_and_it_stays_off(
    tmp_path: Path,
) -> None:
    keyless = Target(id="twitch", platform=Platform.TWITCH, enabled=False)
    relay = relay_for(Group(id="main", targets=[good_target(), keyless]))
    relay.groups["main"].live = True  # live, waiting for the source
    with pytest.raises(ConfigError, match="target 'twitch'"):
        await relay.enable_target("twitch")
    assert not keyless.enabled


async def test_a_missing_stored_key_is_reported_as_it_is_and_nothing_starts() -> None:
    from agent.store.secrets import MissingKey

    def keys(target: Target) -> str | None:
        raise MissingKey(
            "no stream key is stored for it in profile 'default'",
            subject=f"target '{target.id}'",
            hint=f"Store it with `cascade key set {target.id}`",
        )

    relay = Relay(
        Profile(
            groups=[
                Group(
                    id="main",
                    targets=[Target(id="twitch", platform=Platform.TWITCH, key_ref="keyring")],
                )
            ]
        ),
        ffmpeg="ffmpeg",
        bus=EventBus(),
        keys=keys,
    )
    with pytest.raises(MissingKey) as err:
        await relay.start_group("main")
    assert str(err.value).count("target 'twitch'") == 1
    assert "cascade key set twitch" in str(err.value)
    assert nothing_started(relay)
