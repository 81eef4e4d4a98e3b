"""Where Cascade keeps its files: the config directory and the cache directory.

``--config-dir`` / ``CASCADE_CONFIG_DIR`` override the config directory; when it is
overridden the cache lives inside it too, so a test's temporary directory holds everything.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "Cascade"
CONFIG_ENV = "CASCADE_CONFIG_DIR"


def config_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The config directory: the override, ``$CASCADE_CONFIG_DIR``, or the OS default."""
    chosen = override or os.environ.get(CONFIG_ENV)
    if chosen:
        return Path(chosen).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The cache directory (capability probe results and the like)."""
    chosen = override or os.environ.get(CONFIG_ENV)
    if chosen:
        return Path(chosen).expanduser() / "cache"
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def log_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The log directory."""
    chosen = override or os.environ.get(CONFIG_ENV)
    if chosen:
        return Path(chosen).expanduser() / "logs"
    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))
