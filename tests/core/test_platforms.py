"""Platform presets and resolving a target plus its key into a Destination."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from agent.core.model import Platform, Target
from agent.core.platforms import PRESETS, check_url, resolve_destination
from agent.errors import ConfigError
from agent.media.args import Destination

NOW = datetime(2026, 5, 31, 21, 5, 9)
KEY = "s3cr3t-key"


class TestPresets:
    def test_every_platform_has_a_preset(self) -> None:
        assert set(PRESETS) == set(Platform)
        assert all(PRESETS[platform].platform is platform for platform in Platform)

    @pytest.mark.parametrize(
        ("target", "url", "app"),
        [
            pytest.param(
                Target("yt", Platform.YOUTUBE),
                "rtmps://a.rtmps.youtube.com:443/live2",
                "live2",
                id="youtube-primary",
            ),
            pytest.param(
                Target("yt", Platform.YOUTUBE, backup=True),
                "rtmps://b.rtmps.youtube.com:443/live2?backup=1",
                "live2?backup=1",
                id="youtube-backup",
            ),
            pytest.param(
                Target("tw", Platform.TWITCH),
                "rtmps://live.twitch.tv:443/app",
                "app",
                id="twitch",
            ),
            pytest.param(
                Target("kick", Platform.KICK),
                "rtmps://fa723fc1b171.global-contribute.live-video.net:443/app",
                "app",
                id="kick-app",
            ),
            pytest.param(
                Target("fb", Platform.FACEBOOK),
                "rtmps://live-api-s.facebook.com:443/rtmp",
                "rtmp",
                id="facebook-rtmps",
            ),
        ],
    )
    def test_platform_resolves_to_its_ingest_with_the_key_apart(
        self, target: Target, url: str, app: str
    ) -> None:
        assert resolve_destination(target, KEY) == Destination("rtmp", url, app, KEY)

    def test_own_url_overrides_the_preset(self) -> None:
        target = Target("kick", Platform.KICK, url="rtmps://other.contribute.live-video.net/app")
        destination = resolve_destination(target, KEY)

        assert destination == Destination(
            "rtmp", "rtmps://other.contribute.live-video.net/app", "app", KEY
        )

    def test_twitch_also_takes_plain_rtmp(self) -> None:
        target = Target("tw", Platform.TWITCH, url="rtmp://live.twitch.tv/app")
        assert resolve_destination(target, KEY).url == "rtmp://live.twitch.tv/app"


class TestAppSplit:
    @pytest.mark.parametrize(
        ("url", "app"),
        [
            pytest.param("rtmp://h/a/b", "a/b", id="two-segments"),
            pytest.param("rtmp://h:1935/live/", "live", id="trailing-slash"),
            pytest.param("rtmps://[::1]:443/live", "live", id="ipv6-host"),
        ],
    )
    def test_custom_app_is_everything_after_the_host(self, url: str, app: str) -> None:
        destination = resolve_destination(Target("c", url=url), KEY)

        assert destination.app == app
        assert destination.url == url.rstrip("/")
        assert destination.key == KEY

    def test_custom_url_holding_its_key_is_used_as_is(self) -> None:
        destination = resolve_destination(Target("c", url="rtmp://h/live/streamkey"), None)

        assert destination == Destination("rtmp", "rtmp://h/live/streamkey", "live/streamkey")
        assert destination.display == "rtmp://h/live/[key]"

    def test_preset_url_with_a_pasted_key_is_split_not_appended_twice(self) -> None:
        target = Target("tw", Platform.TWITCH, url="rtmp://live.twitch.tv/app/live_123_abc")
        destination = resolve_destination(target, None)

        assert destination == Destination(
            "rtmp", "rtmp://live.twitch.tv/app", "app", "live_123_abc"
        )

    def test_a_separate_key_wins_over_one_pasted_into_the_url(self) -> None:
        target = Target("tw", Platform.TWITCH, url="rtmp://live.twitch.tv/app/live_old")
        destination = resolve_destination(target, "live_new")

        assert destination == Destination("rtmp", "rtmp://live.twitch.tv/app", "app", "live_new")

    def test_youtube_backup_with_pasted_key_keeps_the_query_in_the_app(self) -> None:
        target = Target("yt", Platform.YOUTUBE, url="rtmp://b.rtmp.youtube.com/live2?backup=1/k1")
        destination = resolve_destination(target, None)

        assert (destination.app, destination.key) == ("live2?backup=1", "k1")


class TestSrt:
    def test_key_replaces_a_streamid_already_in_the_url(self) -> None:
        target = Target("s", url="srt://h:9000?streamid=old&latency=200000")
        destination = resolve_destination(target, "a b&c")

        assert destination == Destination("srt", "srt://h:9000?latency=200000", None, "a b&c")
        assert destination.push_url() == "srt://h:9000?latency=200000&streamid=a%20b%26c"

    def test_without_a_key_the_url_is_used_as_given(self) -> None:
        destination = resolve_destination(Target("s", url="srt://h:9000?streamid=x"), None)
        assert destination == Destination("srt", "srt://h:9000?streamid=x")


class TestRecording:
    def test_folder_resolves_to_a_fresh_matroska_file(self, tmp_path: Path) -> None:
        target = Target("rec", Platform.RECORDING, url=f"{tmp_path}/")
        destination = resolve_destination(target, None, now=NOW)

        assert destination == Destination("file", str(tmp_path / "cascade-20260531-210509.mkv"))

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            pytest.param("", "no file or folder", id="empty"),
            pytest.param("videos/show.mkv", "relative", id="relative"),
            pytest.param("file:///tmp/show.mkv", "not a URL", id="url"),
            pytest.param("/tmp/show.flv", "not '.flv'", id="unsupported-extension"),
        ],
    )
    def test_bad_recording_paths_are_refused(self, url: str, message: str) -> None:
        with pytest.raises(ConfigError, match=message) as caught:
            resolve_destination(Target("rec", Platform.RECORDING, url=url), None, now=NOW)
        assert caught.value.subject == "target 'rec'"


class TestRefusals:
    def test_missing_key_for_a_platform_that_needs_one_says_how_to_set_it(self) -> None:
        with pytest.raises(ConfigError) as caught:
            resolve_destination(Target("youtube", Platform.YOUTUBE), None)

        assert caught.value.subject == "target 'youtube'"
        assert str(caught.value).startswith("target 'youtube': no stream key is set. Set its")
        assert "YouTube Studio" in str(caught.value)

    def test_missing_key_is_fine_when_not_required_yet(self) -> None:
        destination = resolve_destination(Target("yt", Platform.YOUTUBE), None, require_key=False)
        assert destination == Destination("rtmp", PRESETS[Platform.YOUTUBE].primary_url, "live2")

    @pytest.mark.parametrize(
        ("target", "message"),
        [
            pytest.param(Target("c", url="rtmp:///live"), "no host", id="no-host"),
            pytest.param(Target("c", url="http://h/live"), "scheme 'http'", id="bad-scheme"),
            pytest.param(Target("c", url="rtmp://h/live key"), "space", id="space"),
            pytest.param(Target("c", url="h/live"), "scheme://host/app", id="no-scheme"),
            pytest.param(Target("c", url="rtmp://h:99999/live"), "port", id="bad-port"),
            pytest.param(Target("c", url="rtmp://h"), "application path", id="no-app"),
            pytest.param(Target("c", url="srt://h?streamid=x"), "needs a port", id="srt-no-port"),
            pytest.param(Target("c"), "no server URL", id="custom-without-url"),
            pytest.param(
                Target("k", Platform.KICK, url="rtmp://x.live-video.net/app"),
                "scheme 'rtmp' is not one Kick accepts",
                id="kick-needs-rtmps",
            ),
            pytest.param(
                Target("tw", Platform.TWITCH, backup=True), "no backup ingest", id="no-backup"
            ),
        ],
    )
    def test_malformed_urls_are_refused_naming_the_target(
        self, target: Target, message: str
    ) -> None:
        with pytest.raises(ConfigError, match=message) as caught:
            resolve_destination(target, KEY)
        assert caught.value.subject == f"target '{target.id}'"
        assert caught.value.hint

    def test_errors_never_quote_a_key_pasted_into_the_url(self) -> None:
        target = Target("c", url="rtmp://h:70000/live/sk_SECRET")
        with pytest.raises(ConfigError) as caught:
            resolve_destination(target, None)
        assert "sk_SECRET" not in str(caught.value)

    def test_a_key_with_a_line_break_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="line break"):
            resolve_destination(Target("tw", Platform.TWITCH), "live_123\n")

    def test_an_unknown_platform_is_refused(self) -> None:
        target = Target("x", platform="myspace")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="platform 'myspace'"):
            resolve_destination(target, KEY)


class TestCheckUrl:
    def test_a_pull_url_of_another_scheme_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="not one the ingest accepts"):
            check_url(
                "http://media/live",
                frozenset({"rtmp", "srt"}),
                title="the ingest",
                subject="the ingest",
            )
