"""``cascade run`` with the tray: the wiring between the tray, the core thread and Control."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from agent.control import Control
from agent.core.events import Event
from agent.errors import CascadeError
from agent.platform import desktop
from agent.platform.autostart import Autostart
from agent.tray.app import Backend, CoreThread, Tray
from agent.tray.model import TrayState
from agent.tray.notify import Notifier

log = logging.getLogger(__name__)

#: Events after which the menu and the icon are rebuilt.
STATE_EVENTS = ("ingest.state", "group.state", "target.state", "stats", "error", "ui.show")

Serve = Callable[[asyncio.Event, Callable[[], Awaitable[None]]], Awaitable[None]]


def snapshot(
    control: Control, *, dashboard_url: str = "", autostart: bool | None = None
) -> TrayState:
    """What the tray shows, read on the core's loop."""
    return TrayState(
        status=control.status(),
        profiles=tuple(control.profiles()["profiles"]),
        autostart=autostart,
        dashboard_url=dashboard_url,
    )


def operations(control: Control) -> dict[str, Callable[[str], Coroutine[Any, Any, Any]]]:
    """Menu actions that are core operations (each runs on the core's loop)."""
    return {
        "start_all": lambda _: control.start_all(),
        "stop_all": lambda _: control.stop_all(),
        "start_group": lambda gid: control.group_action(gid, "start"),
        "stop_group": lambda gid: control.group_action(gid, "stop"),
        "arm_group": lambda gid: control.group_action(gid, "arm"),
        "disarm_group": lambda gid: control.group_action(gid, "disarm"),
        "toggle_target": lambda tid: control.target_action(tid, "toggle"),
        "activate_profile": lambda name: control.activate(name),
    }


class TrayRunner:
    """Runs the tray on this thread and the core on its own, and ends both together."""

    def __init__(
        self,
        backend: Backend,
        control: Control,
        *,
        token: str,
        logs: Path,
        notifications: bool = True,
        dashboard_url: str = "",
        dashboard_link: Callable[[], str] | None = None,
        autostart: Autostart | None = None,
    ) -> None:
        self.control = control
        self._token = token
        self._logs = logs
        self._dashboard_url = dashboard_url
        # "Open dashboard" opens a one-time login link, so nobody types the token.
        self._dashboard_link = dashboard_link or (lambda: dashboard_url)
        self._autostart = autostart
        self._autostart_on = self._read_autostart()
        self.core: CoreThread | None = None
        self._wakeup: tuple[socket.socket, socket.socket] | None = None
        self._core_done = threading.Event()
        self._leaving = threading.Event()  # a stop was asked for: quit, a signal, the core
        self._ui_broken = False
        self.tray = Tray(
            backend,
            operations={name: self._guarded(op) for name, op in operations(control).items()},
            local={
                "copy_ingest_url": lambda _: self._safely(self._copy_ingest_url),
                "copy_token": lambda _: self._safely(lambda: desktop.copy_text(self._token)),
                "open_dashboard": lambda _: self._safely(
                    lambda: desktop.open_page(self._dashboard_link())
                ),
                "toggle_autostart": lambda _: self._safely(self._toggle_autostart),
                "open_logs": lambda _: self._safely(lambda: desktop.open_folder(self._logs)),
                "quit": lambda _: self.quit(),
            },
            schedule=self._schedule,
            state=self._snapshot(),
        )
        self.notifier = Notifier(self.tray.notify, enabled=notifications)

    # -- the core side ----------------------------------------------------------------------

    async def follow(self) -> None:
        """On the core's loop: rebuild the tray on every state event until cancelled."""
        with self.control.agent.bus.subscribe(STATE_EVENTS, maxsize=200) as sub:
            self._update(lambda: self.tray.show(self._snapshot()))
            async for event in sub:
                self._on_event(event)

    def _on_event(self, event: Event) -> None:
        # The dashboard can switch notifications off and on while the agent runs.
        self.notifier.enabled = self.control.agent.settings.notifications
        self.notifier.on_event(event)
        if event.kind == "ui.show":
            self._update(
                lambda: self.tray.notify("Cascade is already running: use this icon's menu.")
            )
        self._update(lambda: self.tray.show(self._snapshot()))

    def _update(self, change: Callable[[], None]) -> None:
        """Change the icon; a failing tray (its display gone) must never end the follower:
        the core goes on relaying and the tray's own loop reports the failure."""
        try:
            change()
        except Exception:
            if not self._ui_broken:
                self._ui_broken = True
                log.warning("tray: the icon cannot be updated", exc_info=True)

    def _guarded(
        self, op: Callable[[str], Coroutine[Any, Any, Any]]
    ) -> Callable[[str], Coroutine[Any, Any, Any]]:
        async def run(arg: str) -> None:
            try:
                await op(arg)
            except CascadeError as exc:  # shown to the person, never swallowed
                log.warning("tray: %s", exc)
                self.tray.notify(str(exc), "Cascade could not do that")

        return run

    def _schedule(self, coro: Coroutine[Any, Any, Any]) -> None:
        if self.core is None or self.core.loop.is_closed():
            coro.close()  # not started, or ended (a click while the icon goes away): dropped
            return
        try:
            self.core.submit(coro)
        except RuntimeError:  # the loop closed in between
            coro.close()

    def _snapshot(self) -> TrayState:
        return snapshot(
            self.control, dashboard_url=self._dashboard_url, autostart=self._autostart_on
        )

    # -- the tray side ----------------------------------------------------------------------

    def _read_autostart(self) -> bool | None:
        """Whether Cascade starts at login (None: not available on this system)."""
        if self._autostart is None:
            return None
        state = self._autostart.status()
        return state.enabled if state.supported else None

    def _toggle_autostart(self) -> None:
        """The "Launch at login" item: write or remove the entry, then show the new state.

        File (or registry) work done right here, on the tray's thread; the menu is rebuilt
        on the core's loop, like every other change."""
        assert self._autostart is not None
        now = self._autostart.disable() if self._autostart_on else self._autostart.enable()
        self._autostart_on = now.enabled if now.supported else None
        log.info("launch at login %s: %s", "on" if now.enabled else "off", now.detail)
        if self.core is not None:
            self.core.call(lambda: self._update(lambda: self.tray.show(self._snapshot())))

    def _copy_ingest_url(self) -> None:
        desktop.copy_text(str(self.tray.state.status.get("ingest", {}).get("url", "")))

    def _safely(self, action: Callable[[], object]) -> None:
        try:
            action()
        except CascadeError as exc:
            log.warning("tray: %s", exc)
            self.tray.notify(str(exc), "Cascade")

    def quit(self) -> None:
        log.info("quit chosen in the tray menu")
        self._leave()

    def _leave(self) -> None:
        """Stop on purpose (the menu, a signal): the tray's end is then no failure."""
        self._leaving.set()
        if self.core is not None:
            self.core.request_stop()

    def run(self, serve: Serve) -> None:
        """Start the core thread, run the tray until the core ends, and join it.

        ``serve(stop, after_start)`` is the agent's main coroutine: it runs until ``stop`` is
        set, calling ``after_start`` once the agent has started.
        """

        async def after_start() -> None:
            asyncio.get_running_loop().create_task(self.follow(), name="tray")

        core = self.core = CoreThread(lambda stop: serve(stop, after_start))
        core.on_exit = self._core_ended
        self._stop_on_signals(core)
        core.start()
        failed = False
        try:
            self.tray.run(setup=self._ready)
            if not self._leaving.is_set():  # pystray ended its loop by itself: it failed
                failed = True
                log.error("the tray failed; stopping every output")
        except Exception:
            failed = True
            log.exception("the tray failed; stopping every output")
        finally:
            core.request_stop()
            core.join()
        if core.error is not None:
            raise core.error
        if failed:
            raise CascadeError(
                f"the tray icon ({self.tray.backend.name} backend) stopped working, so Cascade "
                "stopped every output",
                hint="Start Cascade again; if the desktop has no working tray, run "
                "'cascade run --headless' and use the dashboard or the API",
            )

    def _ready(self, icon: Any) -> None:
        log.info("tray icon shown (%s backend)", self.tray.backend.name)
        if self._core_done.is_set():  # the core ended before the icon existed
            icon.stop()
        if self.tray.backend.name in ("gtk", "appindicator"):
            self._gtk_signals()

    def _core_ended(self) -> None:
        self._leaving.set()
        self._core_done.set()
        with contextlib.suppress(Exception):  # the icon may not exist yet; _ready checks
            self.tray.stop()

    def _stop_on_signals(self, core: CoreThread) -> None:
        """SIGINT, SIGTERM and SIGHUP (logout) stop the core; the tray follows."""
        names = ["SIGINT", "SIGTERM"] + ([] if sys.platform == "win32" else ["SIGHUP"])
        for name in names:
            signal.signal(getattr(signal, name), lambda *_: self._leave())
        # Python runs those handlers on the main thread once it runs Python code again, but
        # the tray's loop may wait in C for the next X (or Cocoa, or Win32) event while the
        # kernel hands the signal to another thread: then nothing would stop. Every signal
        # with a handler is also written to the wakeup socket at once: hear it there too.
        reader, writer = self._wakeup = socket.socketpair()  # kept open for the whole run
        writer.setblocking(False)
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

        def listen() -> None:
            while reader.recv(64):
                self._leave()

        threading.Thread(target=listen, name="cascade-signals", daemon=True).start()

    def _gtk_signals(self) -> None:
        # GTK's loop resets SIGINT and runs no Python handlers while it waits: let GLib
        # deliver the signals instead.
        try:
            from gi.repository import GLib  # type: ignore[import-not-found]
        except ImportError:
            return
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, lambda *_: self._leave())
