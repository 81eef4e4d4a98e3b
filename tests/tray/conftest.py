"""The tray under test: pystray's dummy backend, and a real agent on a real core thread.

pystray picks its backend once, when it is first imported, from ``PYSTRAY_BACKEND``. This file
is imported before any tray test runs, so it sets ``dummy`` and imports pystray here: every
``Menu`` and ``MenuItem`` in this process is then the real pystray class, and no display is
needed. The variable is put back straight after, so the rest of the suite (and every agent it
starts as a subprocess) sees the environment it had; the tray tests set it again while they
run (``load_backend`` reads it).

:class:`RecordingIcon` is the dummy backend's icon with the operating system's side recorded
instead of drawn (the dummy icon raises ``NotImplementedError`` for each of them); its loop is
never run.

:class:`Rig` is ``cascade run`` with the tray, minus the tray's own loop: a real
:class:`~agent.core.agent.Agent` (real FFmpeg, its ingest on a free port) and
:class:`~agent.control.Control` running on a :class:`~agent.tray.app.CoreThread`, and a
:class:`~agent.tray.run.TrayRunner` wired to them exactly as ``cascade run`` wires it, its
``follow()`` rebuilding the tray on the core's events. The test's thread plays pystray's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_before = os.environ.get("PYSTRAY_BACKEND")
os.environ["PYSTRAY_BACKEND"] = "dummy"
import pystray  # type: ignore[import-untyped]  # noqa: E402

if _before is None:
    del os.environ["PYSTRAY_BACKEND"]
else:
    os.environ["PYSTRAY_BACKEND"] = _before

if pystray.Icon.__module__ != "pystray._base":  # imported earlier with a real backend
    raise RuntimeError(
        f"pystray was imported with the {pystray.Icon.__module__} backend before the tray "
        "tests could choose the dummy one; import it lazily (as agent.tray.app does)"
    )

import pytest  # noqa: E402

from agent.control import Control  # noqa: E402
from agent.core.agent import Agent  # noqa: E402
from agent.core.model import (  # noqa: E402
    Group,
    IngestSettings,
    Platform,
    Profile,
    Target,
)
from agent.core.relay import key_from_target  # noqa: E402
from agent.core.settings import Settings  # noqa: E402
from agent.platform import desktop  # noqa: E402
from agent.platform.autostart import Autostart  # noqa: E402
from agent.store.profiles import ProfileStore  # noqa: E402
from agent.tray.app import Backend, CoreThread  # noqa: E402
from agent.tray.model import TrayState  # noqa: E402
from agent.tray.run import TrayRunner  # noqa: E402
from tests.streams import free_port, wait_listening  # noqa: E402

TOKEN = "tray-test-token-9d1c44e0b7a2"
INGEST_KEY = "tray-ingest-key"
WAIT = 20.0  # seconds any wait may take before the test fails saying what it waited for


@pytest.fixture(autouse=True)
def _dummy_backend_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """While a tray test runs, ``PYSTRAY_BACKEND`` says what this process already loaded."""
    monkeypatch.setenv("PYSTRAY_BACKEND", "dummy")


class RecordingIcon(pystray.Icon):  # type: ignore[misc]
    """pystray's dummy icon, with what a backend would do to the desktop recorded.

    ``calls`` holds ``(what, thread ident)`` for every update the tray asked for: ``show``,
    ``hide``, ``icon``, ``title``, ``menu``, ``stop``; ``notifications`` holds
    ``(title, message)``. The loop is never run: ``run()`` fails the test.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.calls: list[tuple[str, int]] = []
        self.notifications: list[tuple[str, str]] = []
        super().__init__(*args, **kwargs)

    def _record(self, what: str) -> None:
        self.calls.append((what, threading.get_ident()))

    def _show(self) -> None:
        self._record("show")

    def _hide(self) -> None:
        self._record("hide")

    def _update_icon(self) -> None:
        self._record("icon")

    def _update_title(self) -> None:
        self._record("title")

    def _update_menu(self) -> None:
        self._record("menu")

    def _notify(self, message: str, title: str | None = None) -> None:
        self.notifications.append((title or "", message))

    def _remove_notification(self) -> None:
        pass

    def _run(self) -> None:
        raise AssertionError("the dummy backend's loop must never run (it would hang)")

    def _run_detached(self) -> None:
        raise AssertionError("the dummy backend's loop must never run (it would hang)")

    def _stop(self) -> None:
        self._record("stop")


def recording_backend() -> Backend:
    """The dummy backend with :class:`RecordingIcon`: pystray's real Menu and MenuItem."""
    return Backend("dummy", RecordingIcon, pystray.Menu, pystray.MenuItem)


# -- menus --------------------------------------------------------------------------------------


def texts(menu: Any) -> list[str]:
    """The labels of a pystray menu's visible items, separators as ``-``."""
    return ["-" if item is pystray.Menu.SEPARATOR else item.text for item in menu.items]


def find(menu: Any, label: str) -> Any:
    """The item of ``menu`` labelled ``label``, or ``label — …`` (a group or a target)."""
    for item in menu.items:
        if item is pystray.Menu.SEPARATOR:
            continue
        if item.text == label or item.text.startswith(f"{label} — "):
            return item
    raise AssertionError(f"no item {label!r} in the menu: {texts(menu)}")


def pick(menu: Any, *path: str) -> Any:
    """The item at ``path`` (labels through submenus)."""
    item = find(menu, path[0])
    for label in path[1:]:
        assert item.submenu is not None, f"{item.text!r} has no submenu"
        item = find(item.submenu, label)
    return item


# -- a real agent -------------------------------------------------------------------------------


def studio_profile(ingest_port: int, closed_port: int, recordings: Path) -> Profile:
    """``main``: ``rec`` (recording, on) and ``site`` (a server that is not there, off);
    ``alt``: ``rec2`` (recording, on) and ``cam`` (recording, off)."""
    return Profile(
        name="studio",
        ingest=IngestSettings(port=ingest_port, key=INGEST_KEY),
        groups=[
            Group(
                id="main",
                name="Main",
                targets=[
                    Target(id="rec", platform=Platform.RECORDING, url=f"{recordings}/main/"),
                    Target(
                        id="site",
                        platform=Platform.CUSTOM,
                        url=f"rtmp://127.0.0.1:{closed_port}/live",
                        enabled=False,
                    ),
                ],
            ),
            Group(
                id="alt",
                targets=[
                    Target(id="rec2", platform=Platform.RECORDING, url=f"{recordings}/alt/"),
                    Target(
                        id="cam",
                        platform=Platform.RECORDING,
                        url=f"{recordings}/cam/",
                        enabled=False,
                    ),
                ],
            ),
        ],
    )


def spare_profile(recordings: Path) -> Profile:
    return Profile(
        name="spare",
        ingest=IngestSettings(port=free_port()),
        groups=[
            Group(
                id="backup",
                targets=[Target(id="tape", platform=Platform.RECORDING, url=f"{recordings}/b/")],
            )
        ],
    )


@dataclass
class Desktop:
    """What the tray asked of the desktop (the OS boundary), instead of doing it."""

    copied: list[str] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)


@pytest.fixture
def fake_desktop(monkeypatch: pytest.MonkeyPatch) -> Desktop:
    seen = Desktop()
    monkeypatch.setattr(desktop, "copy_text", seen.copied.append)
    monkeypatch.setattr(desktop, "open_folder", seen.folders.append)
    monkeypatch.setattr(desktop, "open_page", seen.pages.append)
    return seen


class Rig:
    """``cascade run`` with the tray, the test's thread in the place of pystray's.

    Built the way :func:`agent.cli._run` builds it: the agent, the control and the
    :class:`TrayRunner` on this thread, then the core thread starts the agent and the tray's
    follower. Every future the tray schedules on the core is kept in :attr:`scheduled`.
    """

    def __init__(
        self,
        config_dir: Path,
        store: ProfileStore,
        *,
        dashboard_url: str = "",
        dashboard_link: Callable[[], str] | None = None,
        autostart: Autostart | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.config_dir = config_dir
        self.store = store
        self.logs = config_dir / "logs"
        self.agent = Agent(
            config_dir, settings=settings, profile=store.load_active(), keys=key_from_target
        )
        self.control = Control(
            self.agent, store, secrets=self._no_secrets, keys_for=lambda _name: key_from_target
        )
        self.runner = TrayRunner(
            recording_backend(),
            self.control,
            token=TOKEN,
            logs=self.logs,
            dashboard_url=dashboard_url,
            dashboard_link=dashboard_link,
            autostart=autostart,
        )
        self.scheduled: list[concurrent.futures.Future[Any]] = []
        self._followed = threading.Event()
        self.core = CoreThread(self._serve)
        self.runner.core = self.core
        submit = self.core.submit

        def keep(coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
            future = submit(coro)
            self.scheduled.append(future)
            return future

        self.core.submit = keep  # type: ignore[method-assign]
        self._submit = submit

    @staticmethod
    def _no_secrets() -> Any:
        raise AssertionError("no test here reads the secret store")

    @property
    def tray(self) -> Any:
        return self.runner.tray

    @property
    def icon(self) -> RecordingIcon:
        icon: RecordingIcon = self.runner.tray.icon
        return icon

    async def _serve(self, stop: asyncio.Event) -> None:
        """:func:`agent.cli._serve` without the API server."""
        try:
            await self.agent.start()
            asyncio.get_running_loop().create_task(self._follow(), name="tray")
            await stop.wait()
        finally:
            await self.agent.stop()

    async def _follow(self) -> None:
        self._followed.set()
        await self.runner.follow()

    def start(self) -> Rig:
        self.icon.visible = True  # what the tray's ready() does once the icon exists
        self.core.start()
        if not self._followed.wait(WAIT):
            self.core.request_stop()
            self.core.join(WAIT)
            raise AssertionError(f"the agent did not start: {self.core.error!r}")
        self.on_core(lambda: None)  # the follower has subscribed
        if self.agent.relay is not None:
            self.run(wait_listening(self.agent.profile.ingest.port))
        return self

    def stop(self) -> None:
        self.core.request_stop()
        self.core.join(WAIT)
        assert not self.core.thread.is_alive(), "the core thread did not end"
        if self.core.error is not None:
            raise self.core.error

    # -- acting on the core from the test's thread -------------------------------------------

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the core's loop and return its result."""
        return self._submit(coro).result(WAIT)

    def on_core(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` on the core's loop and return its result."""

        async def call() -> Any:
            return fn()

        return self.run(call())

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.on_core(self.control.status)
        return status

    def settle(self) -> None:
        """Wait for everything the tray scheduled so far (an error fails the test)."""
        for future in list(self.scheduled):
            future.result(WAIT)

    def wait_tray(self, what: str, ok: Callable[[TrayState], bool]) -> TrayState:
        """Wait until the tray's latest snapshot satisfies ``ok`` (and its menu is built)."""
        deadline = time.monotonic() + WAIT
        while True:
            state: TrayState = self.tray.state
            if ok(state):
                # show() adopts the snapshot and rebuilds the menu in one step on the core's
                # loop: once the loop has run anything after it, the menu is the new one.
                self.on_core(lambda: None)
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"the tray never showed {what}: {state.status}")
            time.sleep(0.01)

    def wait_for(self, what: str, ok: Callable[[], object]) -> None:
        """Wait until ``ok()`` is true."""
        deadline = time.monotonic() + WAIT
        while not ok():
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {what}")
            time.sleep(0.01)

    def menu(self) -> Any:
        """The menu the tray last handed the backend."""
        return self.icon.menu

    def choose(self, *path: str) -> None:
        """Click the item at ``path`` in the tray's current menu (as pystray does)."""
        pick(self.menu(), *path)(self.icon)


def group_of(state: TrayState | dict[str, Any], group_id: str) -> dict[str, Any]:
    status = state.status if isinstance(state, TrayState) else state
    group: dict[str, Any] = next(g for g in status["groups"] if g["id"] == group_id)
    return group


def target_of(state: TrayState | dict[str, Any], target_id: str) -> dict[str, Any]:
    status = state.status if isinstance(state, TrayState) else state
    for group in status["groups"]:
        for target in group["targets"]:
            if target["id"] == target_id:
                found: dict[str, Any] = target
                return found
    raise AssertionError(f"no target {target_id!r} in {status}")


@pytest.fixture
def store(config_dir: Path) -> ProfileStore:
    """Profiles ``studio`` (active) and ``spare`` in the test's config directory."""
    profiles = ProfileStore(config_dir)
    recordings = config_dir / "recordings"
    profiles.save(studio_profile(free_port(), free_port(), recordings))
    profiles.save(spare_profile(recordings))
    profiles.use("studio")
    return profiles


@pytest.fixture
def rig(store: ProfileStore, config_dir: Path, fake_desktop: Desktop) -> Iterator[Rig]:
    started = Rig(config_dir, store).start()
    try:
        yield started
    finally:
        if started.core.thread.is_alive():
            started.stop()
