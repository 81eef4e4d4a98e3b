"""Finding FFmpeg: the bundled binary by default, a person's choice without silent fallback."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import pytest

from agent.errors import FFmpegError
from agent.media import ffmpeg
from agent.media.ffmpeg import (
    MIN_VERSION,
    clear_cache,
    find_ffmpeg,
    parse_configuration,
    parse_version_output,
    parse_version_tuple,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="the fake binaries are sh scripts")

VERSION_7_1 = """\
ffmpeg version 7.1 Copyright (c) 2000-2024 the FFmpeg developers
built with gcc 14 (GCC)
configuration: --prefix=/usr --enable-gpl --enable-libx264 --disable-debug
libavutil      59. 39.100 / 59. 39.100
"""

VERSION_4_4 = """\
ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright (c) 2000-2021 the FFmpeg developers
built with gcc 11 (Ubuntu 11.2.0-19ubuntu1)
configuration: --prefix=/usr --extra-version=0ubuntu0.22.04.1 --enable-gpl --enable-libx264
libavutil      56. 70.100 / 56. 70.100
"""


@pytest.fixture(autouse=True)
def _fresh_discovery(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CASCADE_FFMPEG", raising=False)
    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    clear_cache()
    yield
    clear_cache()


def write_script(directory: Path, name: str, body: str) -> Path:
    """A tiny executable shell script standing in for an ffmpeg binary."""
    path = directory / name
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def printing(text: str) -> str:
    """A script body that prints ``text`` on stdout and exits 0."""
    return f"cat <<'EOF'\n{text}EOF\n"


class TestBundledBinary:
    def test_is_found_when_nothing_is_configured(self) -> None:
        binary = find_ffmpeg()

        assert binary.path == Path(imageio_ffmpeg.get_ffmpeg_exe())
        assert binary.version_tuple is not None
        assert binary.version_tuple >= (9,)
        assert "--enable-libx264" in binary.configuration
        assert binary.size == binary.path.stat().st_size
        assert binary.mtime_ns == binary.path.stat().st_mtime_ns

    def test_is_remembered_until_the_cache_is_cleared(self) -> None:
        first = find_ffmpeg()

        assert find_ffmpeg() is first
        clear_cache()
        again = find_ffmpeg()
        assert again is not first
        assert again == first

    def test_cache_key_changes_when_the_file_changes(self) -> None:
        binary = find_ffmpeg()
        rebuilt = dataclasses.replace(binary, mtime_ns=binary.mtime_ns + 1)
        moved = dataclasses.replace(binary, path=Path("/elsewhere/ffmpeg"))

        assert binary.cache_key == dataclasses.replace(binary).cache_key
        assert rebuilt.cache_key != binary.cache_key
        assert moved.cache_key != binary.cache_key


@posix_only
class TestExplicitChoice:
    def test_missing_cascade_ffmpeg_names_the_path_and_the_variable(self, tmp_path: Path) -> None:
        missing = tmp_path / "no-such-ffmpeg"

        with pytest.raises(FFmpegError) as caught:
            find_ffmpeg(env={"CASCADE_FFMPEG": str(missing)})

        message = str(caught.value)
        assert f"CASCADE_FFMPEG={missing}" in message
        assert f"{missing} does not exist" in message
        assert "ffmpeg 5.0 or newer" in message

    def test_broken_cascade_ffmpeg_does_not_fall_back_to_the_bundled_one(
        self, tmp_path: Path
    ) -> None:
        body = "echo 'libavcodec.so.61: not found' >&2\nexit 1\n"
        broken = write_script(tmp_path, "ffmpeg", body)

        with pytest.raises(FFmpegError) as caught:
            find_ffmpeg(env={"CASCADE_FFMPEG": str(broken)})

        message = str(caught.value)
        assert f"{broken} -version exited with code 1: libavcodec.so.61: not found" in message
        assert "CASCADE_FFMPEG" in message
        assert "bundled with imageio-ffmpeg" not in message

    def test_broken_setting_is_an_error_naming_the_setting(self, tmp_path: Path) -> None:
        broken = write_script(tmp_path, "ffmpeg", "exit 1\n")

        with pytest.raises(FFmpegError) as caught:
            find_ffmpeg(str(broken))

        assert caught.value.subject == f"the ffmpeg setting {str(broken)!r}"
        assert "exited with code 1" in caught.value.what

    def test_too_old_version_is_refused_naming_the_minimum(self, tmp_path: Path) -> None:
        old = write_script(tmp_path, "ffmpeg", printing(VERSION_4_4))

        with pytest.raises(FFmpegError) as caught:
            find_ffmpeg(env={"CASCADE_FFMPEG": str(old)})

        message = str(caught.value)
        assert "FFmpeg 4.4.2-0ubuntu0.22.04.1, which is too old" in message
        assert "5.0 or newer" in message
        assert MIN_VERSION == (5, 0)

    def test_command_name_is_looked_up_on_path(self, tmp_path: Path) -> None:
        fake = write_script(tmp_path, "ffmpeg-7", printing(VERSION_7_1))

        binary = find_ffmpeg("ffmpeg-7", env={"PATH": str(tmp_path)})

        assert binary.path == fake
        assert binary.version == "7.1"
        assert binary.version_tuple == (7, 1)
        assert binary.configuration == ("--enable-gpl", "--enable-libx264")

    def test_setting_wins_over_the_environment_variable(self, tmp_path: Path) -> None:
        fake = write_script(tmp_path, "ffmpeg", printing(VERSION_7_1))

        binary = find_ffmpeg(str(fake), env={"CASCADE_FFMPEG": str(tmp_path / "missing")})

        assert binary.path == fake

    def test_command_missing_from_path_is_named(self, tmp_path: Path) -> None:
        with pytest.raises(FFmpegError, match="'ffmpeg-9' is not a path and is not found on PATH"):
            find_ffmpeg("ffmpeg-9", env={"PATH": str(tmp_path)})

    def test_file_without_execute_permission_is_refused(self, tmp_path: Path) -> None:
        plain = tmp_path / "ffmpeg"
        plain.write_text(printing(VERSION_7_1), encoding="utf-8")

        with pytest.raises(FFmpegError, match="is not executable"):
            find_ffmpeg(str(plain))

    def test_program_that_is_not_ffmpeg_is_refused(self, tmp_path: Path) -> None:
        other = write_script(tmp_path, "ffmpeg", "echo 'usage: convert [options]'\n")

        with pytest.raises(FFmpegError) as caught:
            find_ffmpeg(str(other))

        assert "does not look like FFmpeg" in str(caught.value)
        assert "usage: convert" in str(caught.value)

    def test_binary_that_never_answers_times_out(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(ffmpeg, "VERSION_TIMEOUT", 0.5)
        hung = write_script(tmp_path, "ffmpeg", "exec sleep 30\n")

        with pytest.raises(FFmpegError, match=r"-version did not answer within 0\.5 s"):
            find_ffmpeg(str(hung))

    def test_failures_are_not_remembered(self, tmp_path: Path) -> None:
        target = tmp_path / "ffmpeg"
        with pytest.raises(FFmpegError):
            find_ffmpeg(str(target))

        write_script(tmp_path, "ffmpeg", printing(VERSION_7_1))

        assert find_ffmpeg(str(target)).version == "7.1"


@posix_only
class TestNoDefaultWorks:
    def test_error_names_every_candidate_and_the_fix(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        broken = write_script(tmp_path, "imageio-ffmpeg", "exit 3\n")
        empty_path = tmp_path / "bin"
        empty_path.mkdir()
        # imageio-ffmpeg honours this variable before its bundled binary: a way to break it.
        monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(broken))

        with pytest.raises(FFmpegError) as caught:
            find_ffmpeg(env={"PATH": str(empty_path)})

        message = str(caught.value)
        assert f"IMAGEIO_FFMPEG_EXE={broken} (read by imageio-ffmpeg): " in message
        assert f"{broken} -version exited with code 3" in message
        assert "'ffmpeg' on PATH: not found" in message
        assert "Set CASCADE_FFMPEG to the full path of ffmpeg 5.0 or newer" in message
        assert "reinstall cascade-agent" in message


class TestVersionParsing:
    @pytest.mark.parametrize(
        ("version", "expected"),
        [
            pytest.param("n9.0.2-17-g2a571b6068-20260930", (9, 0, 2), id="btbn-release"),
            pytest.param("5.1.6-0+deb12u1", (5, 1, 6), id="debian"),
            pytest.param("N-118000-g1234abcd56-20250101", None, id="git-build"),
            pytest.param("7.1", (7, 1), id="two-numbers"),
            pytest.param("2024-03-04-git-e30369bc1c-full_build-www.gyan.dev", None, id="dated-git"),
            pytest.param("4.4.2-0ubuntu0.22.04.1", (4, 4, 2), id="ubuntu-old"),
        ],
    )
    def test_release_numbers(self, version: str, expected: tuple[int, ...] | None) -> None:
        assert parse_version_tuple(version) == expected

    def test_version_output_gives_version_and_enable_flags(self) -> None:
        assert parse_version_output(VERSION_7_1) == ("7.1", ("--enable-gpl", "--enable-libx264"))

    def test_output_without_version_line_is_not_ffmpeg(self) -> None:
        assert parse_version_output("ffprobe version 7.1\n") is None

    def test_configuration_keeps_enable_flags_across_quoted_values(self) -> None:
        line = "configuration: --enable-gpl --extra-libs='-lgomp -ldl' --disable-x --enable-vaapi"

        assert parse_configuration(line) == ("--enable-gpl", "--enable-vaapi")
