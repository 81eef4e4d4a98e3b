"""The local dashboard: static pages the agent serves itself, and how a browser logs in.

The pages are plain files in :data:`STATIC_DIR` (shipped as package data; no build step).
The API serves them at ``/`` and ``/static/...`` (:mod:`agent.api.pages`). A browser logs in
with a one-time link (:meth:`Dashboard.login_link`), which the tray opens, or by pasting
the API token once; either way it then holds a session cookie (:mod:`.sessions`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent.dashboard.sessions import CODE_LIFETIME, Sessions

__all__ = ["CODE_LIFETIME", "STATIC_DIR", "Dashboard", "Sessions"]

#: The dashboard's files: ``index.html``, ``app.js``, ``style.css`` and what they load.
STATIC_DIR = Path(__file__).resolve().parent / "static"


class Dashboard:
    """The dashboard of one API server: its files, its sessions and its login links.

    ``origin`` answers the server's own address (``http://127.0.0.1:PORT``), asked at each
    call because the port is known only once the server listens.
    """

    def __init__(
        self,
        origin: Callable[[], str],
        *,
        static_dir: Path = STATIC_DIR,
        sessions: Sessions | None = None,
    ) -> None:
        self._origin = origin
        self.static_dir = static_dir
        self.sessions = sessions or Sessions()

    @property
    def origin(self) -> str:
        return self._origin()

    def login_link(self) -> str:
        """A one-time link that opens the dashboard logged in, valid for
        :data:`CODE_LIFETIME` seconds. Safe to call from any thread (the tray's)."""
        return f"{self.origin}/login?code={self.sessions.new_code()}"
