"""Running the API: an aiohttp ``AppRunner`` with one ``TCPSite`` per loopback address.

By default the API listens on ``127.0.0.1`` and, where the machine has IPv6, ``[::1]``, on
the port from the settings (47830). Another address is used only when it was set on purpose
(``api_bind`` in the settings); the token is required there as everywhere.

The same server serves the dashboard; :attr:`ApiServer.dashboard` makes its one-time login
links for the tray (``server.dashboard.login_link()``, from any thread).
"""

from __future__ import annotations

import errno
import logging
import sys
from collections.abc import Callable

from aiohttp import web

from agent.api.app import create_app
from agent.api.security import Guard, is_loopback
from agent.control import Control
from agent.dashboard import Dashboard
from agent.errors import CascadeError

log = logging.getLogger(__name__)


class ApiServer:
    """The API of one agent, started and stopped with it."""

    def __init__(
        self,
        control: Control,
        *,
        token: str,
        port: int,
        bind: str = "127.0.0.1",
        rotate_token: Callable[[], str] | None = None,
    ):
        self.guard = Guard(token, port=port, bind=bind)
        #: The dashboard's files, sessions and login links (``dashboard.login_link()``).
        self.dashboard = Dashboard(lambda: self.guard.own_origin)
        self.app = create_app(
            control, self.guard, rotate_token=rotate_token, dashboard=self.dashboard
        )
        self.bind = bind
        self.requested_port = port
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The port listened on (the real one when 0 was asked for)."""
        return self.guard.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen; a port in use is a :class:`CascadeError` saying what to do."""
        # lingering_time=0: a body that cannot be read is not read on after the answer.
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, lingering_time=0)
        await runner.setup()
        self._runner = runner
        try:
            port = await self._listen(runner, self.bind, self.requested_port)
        except BaseException:
            await runner.cleanup()
            self._runner = None
            raise
        self.guard.port = port
        if self.bind == "127.0.0.1":
            try:
                await self._listen(runner, "::1", port)
            except (OSError, CascadeError):  # no IPv6 on this machine: IPv4 is enough
                log.debug("API: [::1]:%d not available", port)
        elif not is_loopback(self.bind):
            log.warning(
                "API listening on %s:%d as set in the settings; it is reachable from other "
                "machines, with the token",
                self.bind,
                port,
            )
        log.info("API listening on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _listen(self, runner: web.AppRunner, host: str, port: int) -> int:
        # SO_REUSEADDR lets an agent restarted at once bind while the previous one's closed
        # connections linger in TIME_WAIT. Linux only: there it never lets two sockets listen
        # on one port; on Windows and macOS it would let Cascade shadow another listener.
        reuse = sys.platform.startswith("linux")
        site = web.TCPSite(runner, host, port, reuse_address=reuse)
        try:
            await site.start()
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise CascadeError(
                    f"the API port {port} on {host} is already in use",
                    subject="API",
                    hint=(
                        "Another program (or another Cascade) uses it. Start with --port N, or "
                        "set api_port in settings.json"
                    ),
                ) from exc
            raise
        return int(runner.addresses[-1][1])
