"""Agent-wide settings (not per profile): which FFmpeg to use, the API port.

Read from ``settings.json`` in the config directory. A file that cannot be read is left
untouched and the defaults are used, with a warning that says so.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_API_PORT = 47830
SETTINGS_FILE = "settings.json"


@dataclass(slots=True)
class Settings:
    """Agent-wide settings with their embedded defaults."""

    ffmpeg: str | None = None  # path or command; None = the bundled FFmpeg
    api_port: int = DEFAULT_API_PORT

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        known = {f.name for f in fields(cls)}
        settings = cls(**{k: v for k, v in data.items() if k in known})
        if settings.ffmpeg is not None and not isinstance(settings.ffmpeg, str):
            raise TypeError("ffmpeg must be a string")
        if not isinstance(settings.api_port, int) or not 0 < settings.api_port < 65536:
            raise TypeError("api_port must be a port number")
        return settings


def load_settings(config_dir: Path) -> Settings:
    """The settings in ``config_dir``, or the defaults if there are none or they are unreadable."""
    path = config_dir / SETTINGS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError("the file does not hold a JSON object")
        return Settings.from_dict(data)
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError, TypeError) as exc:
        log.warning(
            "settings file %s could not be read (%s); using the defaults and leaving the file "
            "as it is — fix or delete it",
            path,
            exc,
        )
        return Settings()
