"""The API's front door: which Host and Origin may call, the token, and slowing down guessing.

- **Host**: only the agent's own names and port (``127.0.0.1``, ``localhost``, ``[::1]``, and
  the address it was told to bind), so a web page whose domain was re-pointed at 127.0.0.1
  (DNS rebinding) is refused.
- **Origin**: a browser request is accepted only from the agent's own pages; no CORS header is
  ever sent, so no other page can read an answer.
- **Token**: ``Authorization: Bearer <token>`` on every call but ``/healthz`` and the
  dashboard's pages; the WebSocket may pass it as ``?token=`` (browsers cannot set its
  headers). Compared in constant time.
- **Dashboard session**: instead of the token, the ``cascade_session`` cookie of a browser
  that logged in (:mod:`agent.dashboard.sessions`). A request with it that changes something
  (POST, PUT, PATCH, DELETE) or opens the WebSocket must carry the agent's own ``Origin``
  (:meth:`Guard.origin_is_own`), so no other page can make the browser act for it (CSRF).
- **Guessing**: after a few wrong tokens, each further wrong one waits longer (up to
  :data:`MAX_PENALTY` seconds), so trying tokens is hopeless; the right token never waits.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
import time
from collections.abc import Callable

FREE_FAILURES = 3  # wrong tokens answered at once before slowing down
FIRST_PENALTY = 0.25  # seconds; doubles with each further wrong token
MAX_PENALTY = 4.0
FORGET_AFTER = 60.0  # seconds without a wrong token before the count starts again

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class Guard:
    """The security rules of one API server (see the module docstring)."""

    def __init__(
        self,
        token: str,
        *,
        port: int,
        bind: str = "127.0.0.1",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._token = token.encode()
        self.bind = bind
        self._clock = clock
        self._failures = 0
        self._last_failure = 0.0
        self._hosts: frozenset[str] = frozenset()
        self._origins: frozenset[str] = frozenset()
        self.port = port

    @property
    def port(self) -> int:
        return self._port

    @port.setter
    def port(self, port: int) -> None:
        """The port the server listens on (set again once a port 0 is bound)."""
        self._port = port
        names = set(LOOPBACK_NAMES) | _bind_names(self.bind)
        self._hosts = frozenset(f"{name}:{port}" for name in names)
        self._origins = frozenset(f"http://{host}" for host in self._hosts)

    def host_ok(self, host: str | None) -> bool:
        """Whether a request's ``Host`` names this agent."""
        return host is not None and host.lower() in self._hosts

    def origin_ok(self, origin: str | None) -> bool:
        """Whether a request's ``Origin`` (if any) is one of the agent's own pages."""
        return origin is None or origin.lower() in self._origins

    def origin_is_own(self, origin: str | None) -> bool:
        """Whether a request carries an ``Origin`` and it is one of the agent's own pages
        (stricter than :meth:`origin_ok`, which lets a request without one through)."""
        return origin is not None and origin.lower() in self._origins

    @property
    def own_origin(self) -> str:
        """The address a browser on this machine opens the agent's pages at."""
        try:
            ip = ipaddress.ip_address(self.bind)
        except ValueError:
            return f"http://127.0.0.1:{self.port}"
        if ip.is_unspecified:
            host = "127.0.0.1" if ip.version == 4 else "[::1]"
        elif ip.is_loopback and ip.version == 4:
            host = "127.0.0.1"
        else:
            host = f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
        return f"http://{host}:{self.port}"

    @property
    def token(self) -> str:
        """The token itself, for ``GET /api/v1/token`` only (the dashboard's Reveal)."""
        return self._token.decode()

    def token_ok(self, presented: str | None) -> bool:
        """Constant-time comparison of a presented token with the real one."""
        if presented is None:
            return False
        # surrogatepass: bytes of a header that are not UTF-8 reach here as surrogates.
        return hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), self._token)

    def replace_token(self, token: str) -> None:
        self._token = token.encode()

    def failed(self) -> float:
        """Count a wrong token; the seconds its answer should wait."""
        now = self._clock()
        if now - self._last_failure > FORGET_AFTER:
            self._failures = 0
        self._failures += 1
        self._last_failure = now
        over = self._failures - FREE_FAILURES
        if over <= 0:
            return 0.0
        return float(min(MAX_PENALTY, FIRST_PENALTY * 2 ** (over - 1)))


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _bind_names(bind: str) -> set[str]:
    """Host names that reach an explicitly chosen, non-loopback bind address."""
    if is_loopback(bind):
        return set()
    try:
        ip = ipaddress.ip_address(bind)
    except ValueError:
        return set()
    if not ip.is_unspecified:
        return {f"[{bind}]" if ip.version == 6 else bind}
    # 0.0.0.0 or ::: this machine's name and every address it has.
    names = {socket.gethostname().lower(), socket.getfqdn().lower()}
    try:
        import psutil

        for addresses in psutil.net_if_addrs().values():
            for addr in addresses:
                if addr.family == socket.AF_INET:
                    names.add(addr.address)
                elif addr.family == socket.AF_INET6:
                    names.add(f"[{addr.address.split('%')[0]}]")
    except Exception:  # interface listing is best effort
        log.debug("could not list this machine's addresses", exc_info=True)
    return names
