"""The dashboard's logins: one-time login codes and the browser sessions they open.

The tray's "Open dashboard" (or ``POST /api/v1/dashboard/link``) makes a link holding a
random one-time code; opening it trades the code for a session cookie, so the API token is
never typed or put in a URL the browser keeps. Both live in memory only: an agent restart
ends every session, and nothing here is ever written to disk.

- a code is 32 random bytes (URL-safe), good for one use within :data:`CODE_LIFETIME` s;
- a session id is as random, and ends after :data:`SESSION_IDLE` s without a request, on
  ``POST /logout``, or when the agent stops;
- at most :data:`MAX_CODES` codes and :data:`MAX_SESSIONS` sessions are kept (the oldest are
  dropped first), so memory stays bounded whatever a client asks for.

Thread-safe: the tray asks for links from its own thread while the API runs on the core's
event loop.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

CODE_LIFETIME = 60.0  # seconds a login link works
SESSION_IDLE = 12 * 3600.0  # seconds without a request before a session ends
MAX_CODES = 32
MAX_SESSIONS = 64
SECRET_BYTES = 32


class Sessions:
    """Login codes and the sessions they open (see the module docstring)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._codes: OrderedDict[str, float] = OrderedDict()  # code -> expiry
        self._sessions: OrderedDict[str, float] = OrderedDict()  # id -> last use

    def new_code(self) -> str:
        """A fresh one-time login code, valid for :data:`CODE_LIFETIME` seconds."""
        code = secrets.token_urlsafe(SECRET_BYTES)
        with self._lock:
            self._drop_expired_codes()
            self._codes[code] = self._clock() + CODE_LIFETIME
            while len(self._codes) > MAX_CODES:
                self._codes.popitem(last=False)
        return code

    def redeem(self, code: str | None) -> str | None:
        """Trade a login code for a new session id; None if the code is unknown, used or
        expired. A code works once, whatever the outcome."""
        if not code:
            return None
        with self._lock:
            expiry = self._codes.pop(code, None)
            if expiry is None or self._clock() > expiry:
                return None
        return self.open()

    def open(self) -> str:
        """A new session id (after a code was redeemed or the token was given)."""
        session = secrets.token_urlsafe(SECRET_BYTES)
        with self._lock:
            self._sessions[session] = self._clock()
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return session

    def check(self, session: str | None) -> bool:
        """Whether ``session`` is a live session; using it keeps it alive."""
        if not session:
            return False
        now = self._clock()
        with self._lock:
            last = self._sessions.get(session)
            if last is None:
                return False
            if now - last > SESSION_IDLE:
                del self._sessions[session]
                return False
            self._sessions[session] = now
            self._sessions.move_to_end(session)
        return True

    def close(self, session: str | None) -> None:
        """Forget a session (log out); an unknown one is ignored."""
        if session:
            with self._lock:
                self._sessions.pop(session, None)

    @property
    def open_sessions(self) -> int:
        with self._lock:
            return len(self._sessions)

    @property
    def pending_codes(self) -> int:
        with self._lock:
            self._drop_expired_codes()
            return len(self._codes)

    def _drop_expired_codes(self) -> None:
        now = self._clock()
        for code in [c for c, expiry in self._codes.items() if now > expiry]:
            del self._codes[code]
