"""The ``cascade`` command line, run as a person runs it: a real process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent import __version__

ROOT = Path(__file__).resolve().parents[1]


def cascade(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def test_version_prints_the_package_version() -> None:
    result = cascade("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"cascade {__version__}"


def test_doctor_lists_libx264_usable_and_hardware_encoders_unavailable_with_reasons() -> None:
    result = cascade("doctor")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "    libx264: usable" in lines
    for encoder in ("h264_nvenc", "hevc_nvenc", "h264_qsv", "h264_amf", "h264_vaapi"):
        line = next(line for line in lines if line.strip().startswith(f"{encoder}:"))
        assert "unavailable — " in line
        assert line.split("unavailable — ", 1)[1].strip(), f"{encoder} has no reason"
    assert any(line.startswith("FFmpeg: n9.") or line.startswith("FFmpeg: 9.") for line in lines)
    for proto in ("rtmp", "rtmps", "srt"):
        assert f"  protocol {proto}: yes" in lines
    assert any(line.startswith("Config directory: ") for line in lines)
    assert any(line.startswith("Secret store: ") for line in lines)
    assert any(line.startswith("API port ") for line in lines)


def test_doctor_with_a_missing_ffmpeg_says_what_was_tried_and_fails(tmp_path: Path) -> None:
    missing = tmp_path / "no-ffmpeg-here"
    result = cascade("doctor", env={"CASCADE_FFMPEG": str(missing)})
    assert result.returncode == 1
    assert str(missing) in result.stdout
    assert "CASCADE_FFMPEG" in result.stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_headless_stays_up_until_a_signal_then_exits_cleanly(
    tmp_path: Path, sig: signal.Signals
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--headless"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "CASCADE_CONFIG_DIR": str(tmp_path)},
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        seen = ""
        while "running" not in seen and time.monotonic() < deadline:
            seen = proc.stderr.readline()
        assert "running" in seen
        time.sleep(0.3)
        assert proc.poll() is None, "the agent exited by itself"
        proc.send_signal(sig)
        assert proc.wait(10) == 0
        rest = proc.stderr.read()
        assert "agent stopped" in rest
        assert (tmp_path / "logs" / "cascade.log").read_text().count("agent stopped") == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def test_demo_relays_to_every_local_output_and_checks_them() -> None:
    result = cascade("demo", "--seconds", "5")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    checked = {}
    for line in lines:
        if match := re.match(r"  ok   (\S+): h264 (\d+x\d+) \+ aac, ([\d.]+) s$", line):
            checked[match[1]] = (match[2], float(match[3]))
    assert set(checked) == {"local-a", "local-b", "local-720p"}, result.stdout
    assert checked["local-a"][0] == checked["local-b"][0] == "1920x1080"
    assert checked["local-720p"][0] == "1280x720"
    assert all(abs(seconds - 5.0) <= 1.0 for _, seconds in checked.values())
    assert any("local-a live" in line and "kbps" in line for line in lines), "no live figures"


def test_a_second_run_asks_the_running_agent_to_show_itself_and_exits(tmp_path: Path) -> None:
    env = {**os.environ, "CASCADE_CONFIG_DIR": str(tmp_path)}
    first = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--headless", "--port", "47991"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert first.stderr is not None
        deadline = time.monotonic() + 30
        while "running" not in first.stderr.readline() and time.monotonic() < deadline:
            pass
        second = cascade("run", "--headless", env={"CASCADE_CONFIG_DIR": str(tmp_path)})
        assert second.returncode == 0, second.stderr
        assert f"process {first.pid}" in second.stdout
        assert "already running" in second.stdout
        assert "asked to show itself (API 127.0.0.1:47991)" in second.stdout
        assert (tmp_path / "profiles" / "default.json").exists(), "no default profile saved"
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(10)
        if first.stderr:
            first.stderr.close()


def test_a_second_run_that_cannot_reach_the_first_says_it_is_running_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    from agent.cli import main
    from agent.platform.single_instance import InstanceLock

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with InstanceLock(tmp_path) as lock:  # held here, with no API behind it
            lock.set_port(1)
            code = main(["--config-dir", str(tmp_path), "run", "--headless"])
    finally:  # `cascade run` set up its log file: leave the suite's logging as it was
        for handler in set(root.handlers) - set(handlers):
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
    err = capsys.readouterr().err
    assert code == 1
    assert f"Cascade is already running for this config directory (process {os.getpid()}" in err
