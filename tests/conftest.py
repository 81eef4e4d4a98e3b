"""Fixtures shared by the whole suite: the real FFmpeg binary and isolated config dirs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

from agent.media.capabilities import CACHE_FILE, probe_capabilities
from agent.media.ffmpeg import find_ffmpeg
from agent.paths import cache_dir
from tests.media.flv_samples import ffmpeg_flv


@pytest.fixture(autouse=True)
def _isolated_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test runs against its own temporary config directory, never the real one."""
    monkeypatch.setenv("CASCADE_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))
    monkeypatch.delenv("CASCADE_FFMPEG", raising=False)


@pytest.fixture(scope="session")
def ffmpeg_exe() -> str:
    """The FFmpeg shipped in the imageio-ffmpeg wheel: the one Cascade uses by default."""
    return imageio_ffmpeg.get_ffmpeg_exe()


@pytest.fixture(scope="session")
def flv_clip(tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str) -> Path:
    """A 4 s 320x240 30 fps H.264 + AAC FLV clip with a keyframe every second."""
    path = tmp_path_factory.mktemp("media") / "clip.flv"
    video = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "30"]
    return ffmpeg_flv(ffmpeg_exe, path, seconds=4, video=video)


@pytest.fixture(scope="session")
def relay_clip(tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str) -> Path:
    """A 20 s 640x360 30 fps H.264 (keyframe each second, ~1.5 Mbit/s) + AAC FLV, like OBS."""
    path = tmp_path_factory.mktemp("media") / "relay.flv"
    subprocess.run(
        [
            ffmpeg_exe,
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=640x360:r=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "20",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            "1500k",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            "-f",
            "flv",
            str(path),
        ],
        check=True,
        timeout=120,
    )
    return path


@pytest.fixture(scope="session")
def capabilities_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled FFmpeg's capabilities, probed once for the whole run."""
    folder = tmp_path_factory.mktemp("capabilities")
    probe_capabilities(find_ffmpeg(None), cache_dir=folder)
    return folder / CACHE_FILE


@pytest.fixture
def config_dir(capabilities_file: Path) -> Path:
    """The test's config directory (set by the suite's autouse fixture), probe cache filled."""
    folder = Path(os.environ["CASCADE_CONFIG_DIR"])
    cache = cache_dir(folder)
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(capabilities_file, cache / CACHE_FILE)
    return folder
