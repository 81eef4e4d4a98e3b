"""A private, real Secret Service for tests: its own D-Bus session bus and gnome-keyring.

:class:`SecretServiceSession` starts ``dbus-daemon`` on a socket in a temporary folder (with a
minimal configuration that activates no services, so nothing but our daemon can answer), then
``gnome-keyring-daemon --foreground --unlock --components=secrets`` on that bus with a password
on stdin, with its own HOME and XDG folders so it never touches a real login keyring. The
``login`` collection it creates is unlocked and is the default collection, which is where the
``keyring`` package's SecretService backend files entries.

A test process points the ``keyring`` package at it by setting ``DBUS_SESSION_BUS_ADDRESS`` to
:attr:`SecretServiceSession.address`: keyring opens a new D-Bus connection for every call.

Debian packages: ``dbus`` (dbus-daemon) and ``gnome-keyring`` (gnome-keyring-daemon). When one
is missing :class:`SecretServiceUnavailable` says which, and the fixtures fail with it — a test
about the real keyring never skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from jeepney import DBusAddress, new_method_call
from jeepney.io.blocking import open_dbus_connection

SECRETS_NAME = "org.freedesktop.secrets"
DEBIAN_PACKAGES = ("dbus", "gnome-keyring")
_READY_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 5.0

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class SecretServiceUnavailable(RuntimeError):
    """The private Secret Service could not be started; the message says why and what to
    install."""


def _require(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise SecretServiceUnavailable(
            f"{program} (Debian package {package}) is not installed, so the tests cannot run "
            f"a real Secret Service. Install the Debian packages "
            f"{' and '.join(DEBIAN_PACKAGES)}: `apt-get install {' '.join(DEBIAN_PACKAGES)}`."
        )
    return path


class SecretServiceSession:
    """A running dbus-daemon + unlocked gnome-keyring pair; a context manager that stops both.

    ``password`` unlocks (and creates) the ``login`` collection.
    """

    def __init__(self, password: str = "cascade-test-keyring") -> None:
        self.password = password
        self.address = ""
        self._dir: Path | None = None
        self._bus: subprocess.Popen[bytes] | None = None
        self._keyring: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SecretServiceSession:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- starting ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the bus, then the keyring daemon, and wait until the service answers."""
        dbus_daemon = _require("dbus-daemon", "dbus")
        keyring_daemon = _require("gnome-keyring-daemon", "gnome-keyring")
        # A short path: a unix socket path may not exceed ~100 bytes.
        self._dir = Path(tempfile.mkdtemp(prefix="cascade-ss-"))
        config = self._dir / "bus.conf"
        config.write_text(_BUS_CONFIG.format(socket=self._dir / "bus"))
        self._bus = subprocess.Popen(
            [
                dbus_daemon,
                f"--config-file={config}",
                "--nofork",
                "--nopidfile",
                "--print-address=1",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # only a harmless fd-limit warning when not root-owned
        )
        assert self._bus.stdout is not None
        line = self._bus.stdout.readline().decode().strip()
        if not line:
            raise SecretServiceUnavailable(
                f"dbus-daemon exited with code {self._bus.wait()} before printing its address"
            )
        self.address = line

        home = self._dir / "home"
        runtime = self._dir / "run"
        for folder in (home, runtime):
            folder.mkdir(mode=0o700)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_RUNTIME_DIR": str(runtime),
            "DBUS_SESSION_BUS_ADDRESS": self.address,
            "LANG": "C.UTF-8",
        }
        log = open(self._dir / "gnome-keyring.log", "wb")  # noqa: SIM115 — the child owns it
        try:
            self._keyring = subprocess.Popen(
                [keyring_daemon, "--foreground", "--unlock", "--components=secrets"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                env=env,
            )
        finally:
            log.close()
        assert self._keyring.stdin is not None
        # --unlock reads the password up to end of input: no newline, then close.
        self._keyring.stdin.write(self.password.encode())
        self._keyring.stdin.close()
        self._wait_ready()

    def _log_tail(self) -> str:
        if self._dir is None:
            return ""
        try:
            text = (self._dir / "gnome-keyring.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-10:])

    def _wait_ready(self) -> None:
        """Wait until the bus says someone owns org.freedesktop.secrets."""
        deadline = time.monotonic() + _READY_TIMEOUT_S
        bus = DBusAddress(
            "/org/freedesktop/DBus",
            bus_name="org.freedesktop.DBus",
            interface="org.freedesktop.DBus",
        )
        with open_dbus_connection(bus=self.address) as conn:
            while True:
                assert self._keyring is not None
                if self._keyring.poll() is not None:
                    raise SecretServiceUnavailable(
                        f"gnome-keyring-daemon exited with code {self._keyring.returncode}:\n"
                        f"{self._log_tail()}"
                    )
                reply = conn.send_and_get_reply(
                    new_method_call(bus, "NameHasOwner", "s", (SECRETS_NAME,)), timeout=5
                )
                if reply.body[0]:
                    return
                if time.monotonic() > deadline:
                    raise SecretServiceUnavailable(
                        f"gnome-keyring-daemon did not claim {SECRETS_NAME} within "
                        f"{_READY_TIMEOUT_S:.0f} s:\n{self._log_tail()}"
                    )
                time.sleep(0.05)

    # --- stopping ------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the keyring daemon, then the bus, and remove the temporary folder. Safe to
        call twice."""
        for proc in (self._keyring, self._bus):
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._bus is not None and self._bus.stdout is not None:
            self._bus.stdout.close()
        self._keyring = self._bus = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
