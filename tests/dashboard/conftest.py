"""Fixtures of the dashboard's browser tests: Chromium, a private keyring, a real agent.

Everything that holds Playwright open is module-scoped at most: while a browser is open,
Playwright's sync API runs an event loop on the test thread, which the async tests of other
modules need for themselves.

A module may set ``STEPS_IN_ORDER = True``: its tests are steps of one story sharing state,
and once one fails the later ones fail at once, naming it, rather than failing on what the
broken step left behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from agent.api.client import ApiClient
from tests.agent_process import AgentProcess
from tests.dashboard.harness import BackgroundLoop, Screenshots, launch_chromium
from tests.keyring_session import SecretServiceSession

SCREENSHOTS_ENV = "CASCADE_SCREENSHOTS"
# The agent, FFmpeg and Chromium share two cores here: give the page time to catch up.
expect.set_options(timeout=10_000)
_SHOTS = pytest.StashKey[Screenshots]()
_FAILED_STEP = pytest.StashKey[str]()


# -- steps in order ---------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    module = getattr(item, "module", None)
    if report.failed and getattr(module, "STEPS_IN_ORDER", False) and item.parent is not None:
        item.parent.stash.setdefault(_FAILED_STEP, item.name)
    return report


def pytest_runtest_setup(item: pytest.Item) -> None:
    module = getattr(item, "module", None)
    if getattr(module, "STEPS_IN_ORDER", False) and item.parent is not None:
        failed = item.parent.stash.get(_FAILED_STEP, None)
        if failed is not None:
            pytest.fail(f"not run: the earlier step {failed} failed", pytrace=False)


# -- the browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright, for the tests of one module."""
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def screenshots(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Screenshots:
    """Where screenshots go: ``$CASCADE_SCREENSHOTS``, else a folder of the test run."""
    chosen = os.environ.get(SCREENSHOTS_ENV)
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("dashboard-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    shots = Screenshots(folder)
    request.config.stash[_SHOTS] = shots
    print(f"\ndashboard screenshots: {folder}")
    return shots


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    shots = terminalreporter.config.stash.get(_SHOTS, None)
    if shots is not None and shots.taken:
        terminalreporter.write_line(
            f"dashboard screenshots ({len(shots.taken)}): {shots.folder}", bold=True
        )


# -- the agent ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def secret_service() -> Iterator[SecretServiceSession]:
    """A private, real Secret Service (dbus-daemon + gnome-keyring) for the agents' keys."""
    with SecretServiceSession() as session:
        yield session


AgentFactory = Callable[[str], AgentProcess]


@pytest.fixture(scope="module")
def start_agent(
    tmp_path_factory: pytest.TempPathFactory, secret_service: SecretServiceSession
) -> Iterator[AgentFactory]:
    """Starts ``cascade run --headless`` with a token and the private keyring; every agent
    started is stopped at the end of the module and must exit with code 0."""
    started: list[AgentProcess] = []

    def start(token: str) -> AgentProcess:
        config = tmp_path_factory.mktemp("agent-config")
        agent = AgentProcess(
            config, token=token, env={"DBUS_SESSION_BUS_ADDRESS": secret_service.address}
        )
        # Keys must go to the real Secret Service, never to a backend chosen by the environment.
        agent.env.pop("PYTHON_KEYRING_BACKEND", None)
        agent.env.pop("CASCADE_FFMPEG", None)
        started.append(agent.start())
        return agent

    yield start
    codes = {agent.url: agent.stop() for agent in started}
    bad = {url: code for url, code in codes.items() if code != 0}
    assert not bad, f"agents exited with {bad}:\n" + "\n".join(a.stderr_tail() for a in started)


def bearer(agent: AgentProcess, token: str) -> ApiClient:
    """A client with the token, as an OBS script or the CLI would call the agent."""
    return ApiClient(agent.url, token, read_timeout=30.0)


@pytest.fixture(scope="module")
def streams() -> Iterator[BackgroundLoop]:
    """The loop the fake platforms and the publisher run on."""
    with BackgroundLoop() as loop:
        yield loop
