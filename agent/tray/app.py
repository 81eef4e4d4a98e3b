"""The tray icon and its menu, on the main thread, beside the asyncio core in its own thread.

Process model (``cascade run`` without ``--headless``):

- the **core thread** runs the asyncio loop: the agent, its FFmpeg children and the API. It
  lives for the whole run, so children it starts keep their parent-death signal (Linux ties
  it to the thread that forked them);
- the **main thread** runs pystray's loop (macOS requires it).

The tray holds no state of its own: on every state event the core thread takes a snapshot of
the status (one reference swap) and asks the backend to rebuild the menu and swap the icon.
Menu callbacks, which pystray runs on its own thread, only *schedule* work on the core's
loop (:meth:`CoreThread.submit`); they never touch the core's objects.

Quitting from the menu, SIGINT/SIGTERM/SIGHUP (logout), and a crash of the tray backend all
end in the same place: the core stops every child cleanly, then the tray loop ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import queue
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from agent.tray.icons import render
from agent.tray.model import SEPARATOR, Action, Entry, TrayState, menu, overall

log = logging.getLogger(__name__)

BACKENDS = ("appindicator", "gtk", "xorg", "darwin", "win32")


@dataclass(frozen=True, slots=True)
class Backend:
    """A loaded pystray backend: its name, and pystray's Icon, Menu and MenuItem."""

    name: str
    icon: Any
    menu: Any
    item: Any

    @property
    def has_menu(self) -> bool:
        return bool(getattr(self.icon, "HAS_MENU", True))

    @property
    def has_notifications(self) -> bool:
        return bool(getattr(self.icon, "HAS_NOTIFICATION", True))


def load_backend(env: dict[str, str] | None = None) -> tuple[Backend | None, str]:
    """The best tray backend this session offers, or None and why there is none.

    ``PYSTRAY_BACKEND`` picks one; otherwise pystray's order (darwin, win32, or appindicator
    → gtk → xorg on Linux). On Linux without ``DISPLAY``/``WAYLAND_DISPLAY`` there is no
    tray at all. Importing pystray with no X display raises Xlib's ``DisplayNameError``, not
    ImportError, so every failure is caught here.
    """
    env = dict(os.environ if env is None else env)
    if (
        sys.platform.startswith("linux")
        and not env.get("DISPLAY")
        and not env.get("WAYLAND_DISPLAY")
        and env.get("PYSTRAY_BACKEND") != "dummy"
    ):
        return None, "no graphical display (DISPLAY is not set)"
    try:
        import pystray  # type: ignore[import-untyped]
    except Exception as exc:  # DisplayNameError, missing GTK bindings, ...
        return None, f"no tray backend works here ({type(exc).__name__}: {exc})"
    module: ModuleType = sys.modules[pystray.Icon.__module__]
    name = module.__name__.rsplit("._", 1)[-1]
    return Backend(name, pystray.Icon, pystray.Menu, pystray.MenuItem), ""


class CoreThread:
    """The asyncio loop in a thread of its own, running ``main(stop)`` until it returns."""

    def __init__(self, main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        self._main = main
        self.loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self.on_exit: Callable[[], None] = lambda: None
        self.thread = threading.Thread(target=self._run, name="cascade-core", daemon=False)

    def start(self) -> None:
        self.thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._body())
        except BaseException as exc:  # reported by the main thread after join
            self.error = exc
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
            self.on_exit()

    async def _body(self) -> None:
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            await self._main(self._stop)
        finally:  # helpers the main coroutine started (the tray's follower) end with it
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Run ``coro`` on the core's loop (from any thread); never blocks."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, fn: Callable[[], Any]) -> None:
        """Call ``fn`` on the core's loop (from any thread)."""
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn)

    def request_stop(self) -> None:
        """Ask the core to stop every child and end (from any thread, or a signal handler)."""
        stop = self._stop
        if stop is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed in between: already stopping
                self.loop.call_soon_threadsafe(stop.set)

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)


Operation = Callable[[str], Coroutine[Any, Any, Any]]


class Tray:
    """The icon, its menu and its notifications, driven by snapshots of the core's state."""

    def __init__(
        self,
        backend: Backend,
        *,
        operations: dict[str, Operation],
        local: dict[str, Callable[[str], None]],
        schedule: Callable[[Coroutine[Any, Any, Any]], object],
        state: TrayState,
    ) -> None:
        self.backend = backend
        self._operations = operations  # run on the core's loop
        self._local = local  # run right here (clipboard, opening a folder, quitting)
        self._schedule = schedule
        self.state = state
        head = overall(state.status)
        self._icon_state = head.state
        self.icon = backend.icon(
            "cascade",
            icon=render(head.state, 64, template=backend.name == "darwin"),
            title=_title(head.summary),
            menu=self.build_menu(),
        )
        if backend.name == "darwin":
            self.icon.template = True
        self._loop_ended = threading.Event()  # set once the tray's loop returned or failed
        if backend.name == "xorg":
            _xorg_own_connection(self.icon, self._loop_ended)

    # -- the menu ---------------------------------------------------------------------------

    def entries(self) -> tuple[Entry, ...]:
        return menu(self.state)

    def build_menu(self) -> Any:
        """pystray's menu for the current snapshot (every entry from :func:`menu`)."""
        return self.backend.menu(*(self._item(e) for e in self.entries()))

    def _item(self, entry: Entry) -> Any:
        b = self.backend
        if entry == SEPARATOR:
            return b.menu.SEPARATOR
        if entry.children is not None:
            return b.item(
                entry.label,
                b.menu(*(self._item(c) for c in entry.children)),
                enabled=entry.enabled,
            )
        action = entry.action
        checked = entry.checked
        return b.item(
            entry.label,
            self._callback(action),
            checked=None if checked is None else (lambda _item, value=checked: value),
            radio=entry.radio,
            enabled=entry.enabled and action is not None,
            default=entry.default,
        )

    def _callback(self, action: Action | None) -> Callable[[], None]:
        def chosen() -> None:
            if action is not None:
                self.dispatch(action)

        return chosen

    def dispatch(self, action: Action) -> None:
        """Carry out a menu choice: core operations are only scheduled on the core's loop."""
        local = self._local.get(action.name)
        if local is not None:
            local(action.arg)
            return
        operation = self._operations.get(action.name)
        if operation is None:
            log.error("tray: no operation for menu action %r", action.name)
            return
        self._schedule(operation(action.arg))

    # -- following the core -----------------------------------------------------------------

    def show(self, state: TrayState) -> None:
        """Adopt a new snapshot: swap the icon if the overall state changed, rebuild the menu.

        Called on the core's thread; pystray marshals to its own loop where it must (GTK),
        and on macOS the update goes through the main thread's run loop.
        """
        self.state = state
        head = overall(state.status)
        self._ui(lambda: self._apply(head.state, head.summary))

    def _apply(self, icon_state: str, summary: str) -> None:
        if icon_state != self._icon_state:
            self._icon_state = icon_state
            self.icon.icon = render(icon_state, 64, template=self.backend.name == "darwin")
        self.icon.title = _title(summary)
        if self.backend.has_menu:
            self.icon.menu = self.build_menu()
            self.icon.update_menu()

    def notify(self, message: str, title: str = "Cascade") -> None:
        if self.backend.has_notifications:
            self._ui(lambda: self.icon.notify(message, title))

    def _ui(self, fn: Callable[[], None]) -> None:
        if self.backend.name == "darwin":  # AppKit objects belong to the main thread
            from PyObjCTools import AppHelper  # type: ignore[import-not-found]

            AppHelper.callAfter(fn)
        else:
            fn()

    # -- running ----------------------------------------------------------------------------

    def run(self, setup: Callable[[Any], None] | None = None) -> None:
        """Run the tray loop on this (the main) thread until :meth:`stop`."""

        def ready(icon: Any) -> None:
            icon.visible = True
            if setup is not None:
                setup(icon)

        try:
            self.icon.run(setup=ready)
        finally:
            self._loop_ended.set()

    def stop(self) -> None:
        self.icon.stop()


def _title(summary: str) -> str:
    """The tooltip: plain Latin-1, which every backend can show (X11 window names are)."""
    text = f"Cascade - {summary}".replace("—", "-").replace("…", "...")
    return text.encode("latin-1", "replace").decode("latin-1")


def _xorg_own_connection(icon: Any, loop_ended: threading.Event) -> None:
    """Make pystray's xorg icon safe to update from other threads (the core, the setup).

    The xorg backend runs every update (icon, title, show, hide, stop) on its loop's thread:
    the calling thread sends the icon's window an X message and waits for the loop to answer.
    It sends it on the loop's own python-xlib connection, and two threads on one connection
    now and then both wait forever inside python-xlib: the core's loop would hang with it.
    Here the message goes out on a connection of the calling thread's own instead; the loop
    still does the work, on its connection alone. Unknown pystray internals leave it as it is.

    The caller waits for the loop's answer only while the loop runs: once it ended (the X
    server went away, the backend failed), an update is dropped rather than waited for, so the
    core's thread never hangs on a tray that is gone and can still stop every output.
    """
    try:
        from Xlib import X  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from Xlib import display as xdisplay  # type: ignore[import-untyped,unused-ignore]

        name = icon._display.get_display_name()
        window_id = icon._window.id
        results = icon._queue
    except Exception:  # another pystray version: keep its own way
        log.warning("tray: pystray's xorg icon is not the expected one; updates may hang")
        return
    connections = threading.local()

    def dispatcher(method: str) -> Callable[[], None]:
        original = getattr(type(icon), method)
        atom_name = f"_PYSTRAY_{method.upper()}"  # the message pystray's loop answers

        def run() -> None:
            loop = getattr(icon, "_thread", None)  # set once pystray's loop runs
            if loop is not None and loop.ident == threading.get_ident():
                original(icon)
                return
            if loop_ended.is_set():
                return
            try:
                conn = getattr(connections, "conn", None)
                if conn is None:
                    conn = connections.conn = xdisplay.Display(name)
                message = xdisplay.event.ClientMessage(
                    window=window_id,
                    client_type=conn.intern_atom(atom_name),
                    data=(32, (X.CurrentTime, 0, 0, 0, 0)),
                )
                conn.send_event(window_id, message, event_mask=X.NoEventMask)
                conn.flush()
            except Exception:  # the X server is gone: so is the icon
                log.warning("tray: the X display is gone; %s dropped", method)
                return
            while True:
                try:
                    result = results.get(timeout=0.2)
                    break
                except queue.Empty:
                    if loop_ended.is_set():
                        log.warning("tray: the icon's loop ended; %s dropped", method)
                        return
            if result is not True:  # (type, exception, traceback) from the loop
                raise result[1]

        return run

    for method in ("_show", "_hide", "_update_icon", "_update_title", "_stop"):
        setattr(icon, method, dispatcher(method))

    # pystray asks the tray to dock the icon again on every icon change; trayer, for one,
    # now and then loses the icon then (it stays undocked, invisible). Dock only when not
    # docked: at first, and after the tray went away (pystray then forgets its manager).
    dock = icon._assert_docked

    def assert_docked() -> None:
        if icon._systray_manager is None:
            dock()

    icon._assert_docked = assert_docked
