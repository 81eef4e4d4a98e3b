"""A real agent for end-to-end tests: ``python -m agent run --headless`` as a child process.

::

    with AgentProcess(config_dir, port=free_port()) as agent:   # waits for /healthz
        agent.client().get("/api/v1/status")
    # left: SIGTERM, and the agent must have exited with code 0

The agent gets its own config directory (``CASCADE_CONFIG_DIR``) and, if ``token`` is given,
``CASCADE_API_TOKEN``; without it the agent creates its token the normal way (the keyring, or
the ``api-token`` file where there is none) and :meth:`AgentProcess.token` reads it back the
way the CLI does. The agent's stderr goes to ``agent-stderr.log`` in the config directory (a
pipe nobody reads could fill up and stall it); failures quote its end.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from agent.api.client import ApiClient
from agent.api.token import TOKEN_ENV, TokenStore
from tests.streams import free_port

ROOT = Path(__file__).resolve().parents[1]
STDERR_FILE = "agent-stderr.log"


class AgentProcess:
    """One ``cascade run --headless`` child on ``127.0.0.1:port``."""

    def __init__(
        self,
        config_dir: Path,
        *,
        port: int | None = None,
        token: str | None = None,
        env: dict[str, str] | None = None,
        ready_timeout: float = 30.0,
    ) -> None:
        self.config_dir = config_dir
        self.port = port if port is not None else free_port()
        self.env = {**os.environ, **(env or {}), "CASCADE_CONFIG_DIR": str(config_dir)}
        self.env.pop(TOKEN_ENV, None)
        if token is not None:
            self.env[TOKEN_ENV] = token
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self.returncode: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stderr_path(self) -> Path:
        return self.config_dir / STDERR_FILE

    def start(self) -> AgentProcess:
        """Launch the agent and wait until ``/healthz`` answers (or fail with its stderr)."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.stderr_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--headless", "--port", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            cwd=ROOT,
            env=self.env,
        )
        try:
            self.wait_healthy()
        except BaseException:
            self.kill()
            raise
        return self

    def wait_healthy(self) -> dict[str, Any]:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the agent exited with {self.proc.returncode} before /healthz answered:\n"
                    f"{self.stderr_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1.0) as answer:
                    data: dict[str, Any] = json.loads(answer.read())
                    if data.get("ok") is True:
                        return data
            except (OSError, urllib.error.URLError, ValueError) as exc:
                last = repr(exc)
            time.sleep(0.05)
        raise AssertionError(
            f"/healthz did not answer within {self.ready_timeout} s ({last}):\n{self.stderr_tail()}"
        )

    def token(self) -> str:
        """The token this agent accepts, read the way a client on this machine reads it."""
        token = TokenStore(self.config_dir, env=self.env).read()
        assert token, f"no API token for {self.config_dir}"
        return token

    def client(self, token: str | None = None, **kwargs: Any) -> ApiClient:
        return ApiClient(self.url, token if token is not None else self.token(), **kwargs)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait, and return the exit code (the agent is killed if it hangs)."""
        if self.proc is None:
            return self.returncode if self.returncode is not None else 0
        proc, self.proc = self.proc, None
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    raise AssertionError(
                        f"the agent did not stop within {timeout} s of SIGTERM:\n"
                        f"{self.stderr_tail()}"
                    ) from None
            self.returncode = proc.returncode
            return proc.returncode
        finally:
            self._close()

    def kill(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self.proc.kill()
            self.proc.wait()
            self.proc = None
        self._close()

    def stderr_tail(self, chars: int = 4000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no stderr)"

    def _close(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> AgentProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        code = self.stop()
        if exc_type is None:
            assert code == 0, f"the agent exited with {code}:\n{self.stderr_tail()}"
