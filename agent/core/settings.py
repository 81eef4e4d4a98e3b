"""Agent-wide settings (not per profile): which FFmpeg to use, the API's address and port.

Kept in ``settings.json`` in the config directory and read and written through
:mod:`agent.store.atomic`: a save is atomic and keeps the previous version as
``settings.json.bak``; a file that is damaged or holds values of the wrong type is kept aside
(``settings.json.corrupt-…``), never overwritten, and the backup or the defaults are used, with
a warning that says so.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from agent.store.atomic import read_json, write_json_atomic

log = logging.getLogger(__name__)

DEFAULT_API_PORT = 47830
DEFAULT_API_BIND = "127.0.0.1"
SETTINGS_FILE = "settings.json"


@dataclass(slots=True)
class Settings:
    """Agent-wide settings with their embedded defaults."""

    ffmpeg: str | None = None  # path or command; None = the bundled FFmpeg
    api_port: int = DEFAULT_API_PORT
    # The API listens on loopback only. Any other address must be set here on purpose; the
    # API then answers there too, still only with its token.
    api_bind: str = DEFAULT_API_BIND
    notifications: bool = True  # desktop notifications from the tray

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Settings from a JSON object; unknown keys are ignored, missing ones default.

        Raises ValueError for a value of the wrong type (the file is then treated as damaged).
        """
        known = {f.name for f in fields(cls)}
        settings = cls(**{k: v for k, v in data.items() if k in known})
        if settings.ffmpeg is not None and not isinstance(settings.ffmpeg, str):
            raise ValueError("ffmpeg: expected text (a path or a command)")
        port = settings.api_port
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ValueError("api_port: expected a port number from 1 to 65535")
        if not isinstance(settings.notifications, bool):
            raise ValueError("notifications: expected true or false")
        try:
            ipaddress.ip_address(settings.api_bind)
        except ValueError:
            raise ValueError("api_bind: expected an IP address such as 127.0.0.1") from None
        return settings

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready object."""
        return asdict(self)


def load_settings(config_dir: Path, *, warnings: list[str] | None = None) -> Settings:
    """The settings in ``config_dir``: the file, else its backup, else the defaults.

    What went wrong, if anything, is logged and appended to ``warnings``.
    """
    result = read_json(config_dir / SETTINGS_FILE, Settings.from_dict)
    if result.message:
        log.warning("%s", result.message)
        if warnings is not None:
            warnings.append(result.message)
    return result.value or Settings()


def save_settings(config_dir: Path, settings: Settings) -> None:
    """Write the settings atomically, keeping the previous file as ``settings.json.bak``.

    Raises :class:`~agent.store.atomic.StoreError` if the disk refuses.
    """
    write_json_atomic(config_dir / SETTINGS_FILE, settings.to_dict())
