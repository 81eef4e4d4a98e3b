"""A small client of the local control API, for the CLI (and any Python script).

Standard library only (``http.client`` + ``json``), so ``cascade status`` starts fast and needs
no event loop. :meth:`ApiClient.for_config` finds the agent of a config directory the way
any integration would: the API port from the instance lock file when an agent holds it
(else the ``api_port`` setting), and the token from :class:`~agent.api.token.TokenStore`.

Every failure is a :class:`~agent.errors.CascadeError` a person can act on:

- :class:`AgentNotRunning`: nothing answers on the port (or it does not answer in time);
- :class:`TokenRefused`: 401, the token does not match the agent's;
- :class:`ApiRequestError`: any other error answer; an API error body
  (``{"error": {"message": ...}}``) becomes the message as it is.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

from agent.errors import CascadeError

__all__ = [
    "CONNECT_TIMEOUT_S",
    "READ_TIMEOUT_S",
    "AgentNotRunning",
    "ApiClient",
    "ApiClientError",
    "ApiRequestError",
    "TokenRefused",
    "running_holder",
]

CONNECT_TIMEOUT_S = 2.0
#: How long an answer may take once connected: actions wait for processes to start or stop.
READ_TIMEOUT_S = 15.0
HOST = "127.0.0.1"


class ApiClientError(CascadeError):
    """Raised when a call to the local API does not succeed."""


class AgentNotRunning(ApiClientError):
    """Nothing answers on the agent's address, or it does not answer in time."""


class TokenRefused(ApiClientError):
    """The agent answered 401: the token this client sent is not the agent's."""


class ApiRequestError(ApiClientError):
    """An error answer from the API; ``status`` and ``code`` say which."""

    def __init__(self, message: str, *, status: int, code: str = "error") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def running_holder(config_dir: Path) -> tuple[int, int | None] | None:
    """``(pid, API port or None)`` of the agent holding ``config_dir``'s lock, if one runs.

    The lock file's details are only trusted while their process exists: a crashed agent
    leaves stale ones behind (a stopped one clears them).
    """
    from agent.platform.single_instance import LOCK_FILE, read_holder

    holder = read_holder(config_dir / LOCK_FILE)
    if holder is None or not _pid_alive(holder.pid):
        return None
    return holder.pid, holder.port


def _pid_alive(pid: int) -> bool:
    import psutil  # os.kill(pid, 0) would terminate the process on Windows

    try:
        return bool(psutil.pid_exists(pid))
    except Exception:  # cannot tell: trust the details, the connection will say
        return True


class ApiClient:
    """Calls ``http://127.0.0.1:PORT`` with the bearer token; answers are parsed JSON."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        read_timeout: float = READ_TIMEOUT_S,
    ) -> None:
        scheme, _, rest = base_url.rstrip("/").partition("://")
        if scheme != "http" or not rest:
            raise ValueError(f"expected http://HOST:PORT, not {base_url!r}")
        host, _, port = rest.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"expected http://HOST:PORT, not {base_url!r}")
        self.base_url = f"http://{rest}"
        self.host = host
        self.port = int(port)
        self.token = token
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    @classmethod
    def for_config(cls, config_dir: Path, **kwargs: Any) -> ApiClient:
        """A client of the agent running for ``config_dir`` (or that would run there)."""
        from agent.api.token import TokenStore
        from agent.core.settings import load_settings

        settings = load_settings(config_dir)
        running = running_holder(config_dir)
        port = running[1] if running is not None else None
        if port is None:
            port = settings.api_port
        url = f"http://{_host_for(settings.api_bind)}:{port}"
        return cls(url, TokenStore(config_dir).read(), **kwargs)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # -- calls ------------------------------------------------------------------------------

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One call; the answer's JSON (None for an empty answer such as 204).

        Raises :class:`AgentNotRunning`, :class:`TokenRefused` or :class:`ApiRequestError`.
        """
        headers = {"Host": self.address, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        payload: bytes | None = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout)
        try:
            try:
                conn.connect()
            except OSError as exc:  # refused, unreachable, or no answer within the timeout
                raise self._not_running() from exc
            if conn.sock is not None:
                conn.sock.settimeout(self.read_timeout)
            try:
                conn.request(method, path, body=payload, headers=headers)
                with conn.getresponse() as response:
                    status = response.status
                    raw = response.read()
            except TimeoutError as exc:
                raise AgentNotRunning(
                    f"Cascade on {self.address} did not answer within {self.read_timeout:g} s",
                    hint="It may be busy or stuck; see its log, or restart it",
                ) from exc
            except (OSError, http.client.HTTPException) as exc:
                raise AgentNotRunning(
                    f"the connection to Cascade on {self.address} broke ({type(exc).__name__})",
                    hint="Check that the agent still runs ('cascade status'), then try again",
                ) from exc
        finally:
            conn.close()
        try:
            data = json.loads(raw) if raw.strip() else None
        except (ValueError, UnicodeDecodeError):
            if status >= 400:
                raise self._error(status, None, raw) from None
            raise ApiRequestError(
                f"the program on {self.address} did not answer in JSON; it may not be Cascade",
                status=status,
                code="not_json",
            ) from None
        if status >= 400:
            raise self._error(status, data, raw)
        return data

    # -- errors -----------------------------------------------------------------------------

    def _not_running(self) -> AgentNotRunning:
        return AgentNotRunning(
            f"Cascade is not running (nothing answers on {self.address})",
            hint="Start it with 'cascade run'",
        )

    def _error(self, status: int, data: Any, raw: bytes) -> ApiClientError:
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        if status == 401:
            what = (
                f"the agent on {self.address} wants an API token and none was found"
                if not self.token
                else f"the agent on {self.address} refused the API token"
            )
            return TokenRefused(
                what,
                hint=(
                    "'cascade token' prints this config directory's token; after "
                    "'cascade token rotate', restart the agent. An agent started with "
                    "CASCADE_API_TOKEN or another --config-dir needs the same here"
                ),
            )
        if isinstance(message, str) and message:
            code = error.get("code") if isinstance(error, dict) else None
            return ApiRequestError(message, status=status, code=str(code or "error"))
        snippet = raw[:200].decode("utf-8", errors="replace").strip()
        return ApiRequestError(
            f"the program on {self.address} answered HTTP {status}"
            + (f" ({snippet})" if snippet else "")
            + "; it may not be Cascade",
            status=status,
        )


def _host_for(bind: str) -> str:
    """The address that reaches an agent bound to ``bind`` (a wildcard: this machine)."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(bind)
    except ValueError:
        return HOST
    if ip.is_unspecified:
        return HOST
    return f"[{ip}]" if ip.version == 6 else str(ip)
