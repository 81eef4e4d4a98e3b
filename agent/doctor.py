"""``cascade doctor``: what this machine gives Cascade, and what is missing, in plain lines."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, field
from pathlib import Path

from agent import __version__
from agent.errors import CascadeError
from agent.media.capabilities import probe_capabilities
from agent.media.ffmpeg import find_ffmpeg
from agent.paths import cache_dir


@dataclass(slots=True)
class Report:
    """The doctor's findings: lines to print, and whether anything essential is broken."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)

    def problem(self, line: str) -> None:
        self.lines.append(line)
        self.problems.append(line)


def secret_store_line(config_dir: Path) -> str:
    """Where stream keys would be kept on this machine, and why (never a key itself)."""
    from agent.store.secrets import choose_store

    try:
        return choose_store(config_dir).describe()
    except CascadeError as exc:
        # Not fatal (keys can still come from ${ENV_VAR} references); the message says so.
        return str(exc)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``host:port`` can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def diagnose(config_dir: Path, *, ffmpeg_setting: str | None, port: int, refresh: bool) -> Report:
    """Check FFmpeg, its protocols and encoders, the config dir, the keyring and the API port."""
    report = Report()
    report.add(f"Cascade {__version__}")
    try:
        binary = find_ffmpeg(ffmpeg_setting)
    except CascadeError as exc:
        report.problem(f"FFmpeg: {exc}")
    else:
        report.add(f"FFmpeg: {binary.version} at {binary.path}")
        try:
            caps = probe_capabilities(binary, cache_dir=cache_dir(config_dir), refresh=refresh)
        except CascadeError as exc:
            report.problem(f"  capabilities: {exc}")
        else:
            for proto in ("rtmp", "rtmps", "srt"):
                if caps.has_protocol(proto):
                    report.add(f"  protocol {proto}: yes")
                else:
                    report.problem(f"  protocol {proto}: missing from this FFmpeg build")
            report.add("  encoders (a real one-frame test encode each):")
            for test in caps.tests.values():
                if test.usable:
                    report.add(f"    {test.name}: usable")
                else:
                    report.add(f"    {test.name}: unavailable — {test.reason}")
            if not caps.encoder_status("libx264").usable:
                report.problem("  libx264 is not usable: re-encode groups cannot run")
    report.add(f"Config directory: {config_dir}")
    report.add(f"Secret store: {secret_store_line(config_dir)}")
    if port_is_free(port):
        report.add(f"API port {port}: free")
    else:
        report.add(f"API port {port}: in use (a running Cascade, or choose another with --port)")
    return report
