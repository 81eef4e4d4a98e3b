"""Fixtures for the real Secret Service (gnome-keyring on a private D-Bus session bus).

Only Secret Service fixtures live here, all named ``secret_service*``:

- ``secret_service_session`` (session): one private bus + unlocked gnome-keyring for the run;
- ``secret_service``: points this process's ``keyring`` at it for one test, and proves that
  keyring picked its SecretService backend;
- ``secret_service_fresh``: a second, empty Secret Service of its own, for "another machine".

A missing dbus-daemon or gnome-keyring-daemon fails these tests with the Debian packages to
install; it never skips them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keyring
import keyring.backend
import keyring.core
import pytest
from keyring.backends import SecretService

from agent.store.secrets import KeyringRefused, KeyringStore
from tests.keyring_session import SecretServiceSession, SecretServiceUnavailable


def _forget_viable_backends() -> None:
    """Drop keyring's once-per-process list of viable backends (a jaraco ``@once``)."""
    with contextlib.suppress(KeyError):  # KeyError: nothing was computed yet
        keyring.backend.get_all_keyring.reset()


def _start() -> SecretServiceSession:
    session = SecretServiceSession()
    try:
        session.start()
    except SecretServiceUnavailable as exc:
        session.stop()
        problem = str(exc)
    except BaseException:
        session.stop()
        raise
    else:
        return session
    # Outside the except block, so the report is one clear sentence and not a chain.
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def secret_service_session() -> Iterator[SecretServiceSession]:
    """A private dbus-daemon and unlocked gnome-keyring, shared by the whole run."""
    session = _start()
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture
def secret_service_fresh() -> Iterator[SecretServiceSession]:
    """A second Secret Service with nothing in it: "another machine". The test switches to it
    by setting ``DBUS_SESSION_BUS_ADDRESS`` to its ``address``."""
    session = _start()
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture
def secret_service(
    secret_service_session: SecretServiceSession, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SecretServiceSession]:
    """The shared Secret Service, with ``keyring`` in this process pointed at it.

    keyring decides once per process which backends are viable and which one to use: forget
    both, detect again under the private bus, and put the previous choice back afterwards so
    other tests see what they saw.
    """
    previous = keyring.get_keyring()
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", secret_service_session.address)
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    _forget_viable_backends()
    keyring.core.init_backend()
    chosen = keyring.get_keyring()
    try:
        # What Cascade files keys with: keyring's choice, or the first acceptable member when
        # keyring chains several backends (as it does where keyrings.alt is installed).
        used: object = KeyringStore(chosen).backend
    except KeyringRefused as exc:
        used = exc
    assert isinstance(used, SecretService.Keyring), (
        f"keyring picked {type(chosen).__module__}.{type(chosen).__name__} ({used}), not its "
        "SecretService backend, although a Secret Service is running on the test bus; "
        "a keyringrc.cfg in keyring's config folder may be forcing another backend"
    )
    try:
        yield secret_service_session
    finally:
        _forget_viable_backends()
        keyring.core.set_keyring(previous)
