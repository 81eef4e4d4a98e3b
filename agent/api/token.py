"""The API token: created on first run, kept with the secrets, printed by ``cascade token``.

The token lives in the OS keyring, under Cascade's service name, in an entry named after the
config directory (so two set-ups on one machine have two tokens). Where no usable keyring
exists (a headless server without a Secret Service), it is kept in ``api-token`` in the
config directory, readable by its owner only, and the agent says so once in its log. The
encrypted key vault is not used for it: every client (the CLI, an OBS script) must read the
token without a passphrase.

``CASCADE_API_TOKEN`` overrides both, for the agent and its clients alike (containers, CI).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from agent.errors import CascadeError
from agent.store.atomic import write_bytes_atomic
from agent.store.secrets import SERVICE_NAME, KeyringStore, SecretStoreError

log = logging.getLogger(__name__)

TOKEN_ENV = "CASCADE_API_TOKEN"
TOKEN_FILE = "api-token"
TOKEN_BYTES = 32  # 256 bits, URL-safe base64: 43 characters
MIN_TOKEN_LENGTH = 16


class TokenStore:
    """Where this config directory's API token is kept, and the operations on it."""

    def __init__(
        self, config_dir: Path, *, env: Mapping[str, str] = os.environ, use_keyring: bool = True
    ) -> None:
        self.config_dir = config_dir
        self._env = env
        self._keyring: KeyringStore | None = None
        self._why_not = ""
        if use_keyring:
            try:
                store = KeyringStore()
                store.check()
            except SecretStoreError as exc:
                self._why_not = exc.what
            else:
                self._keyring = store

    @property
    def entry(self) -> str:
        """The keyring entry's name: one token per config directory."""
        return f"api-token:{self.config_dir.resolve()}"

    @property
    def file(self) -> Path:
        return self.config_dir / TOKEN_FILE

    def where(self) -> str:
        """Where the token is kept, in words (never the token)."""
        if self._env.get(TOKEN_ENV):
            return f"the environment variable {TOKEN_ENV}"
        if self._keyring is not None:
            return f"the OS keyring (service '{SERVICE_NAME}', entry '{self.entry}')"
        return f"{self.file} (no usable OS keyring: {self._why_not})"

    def read(self) -> str | None:
        """The token, or None if none was created yet."""
        from_env = self._env.get(TOKEN_ENV, "").strip()
        if from_env:
            return _checked(from_env)
        if self._keyring is not None:
            try:
                token = self._keyring.backend.get_password(SERVICE_NAME, self.entry)
            except Exception as exc:  # backends raise many types: translated
                raise _failed("read", exc) from exc
            return token or None
        try:
            return self.file.read_text(encoding="ascii").strip() or None
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise CascadeError(
                f"the API token file could not be read ({exc})",
                subject=str(self.file),
                hint="Check its permissions, or replace it with 'cascade token rotate'",
            ) from exc

    def get_or_create(self) -> str:
        """The token; a new random one is stored on the first run."""
        token = self.read()
        if token is not None:
            return token
        token = self._store(new_token())
        log.info("created the API token; it is kept in %s", self.where())
        return token

    def rotate(self) -> str:
        """Replace the token; clients using the old one are refused from now on."""
        if self._env.get(TOKEN_ENV):
            raise CascadeError(
                f"the token comes from the environment variable {TOKEN_ENV}",
                subject="API token",
                hint=f"Change {TOKEN_ENV} instead, then restart the agent",
            )
        return self._store(new_token())

    def _store(self, token: str) -> str:
        if self._keyring is not None:
            try:
                self._keyring.backend.set_password(SERVICE_NAME, self.entry, token)
            except Exception as exc:  # backends raise many types: translated
                raise _failed("save", exc) from exc
            return token
        if self._why_not:
            log.warning(
                "no usable OS keyring (%s); the API token is kept in %s, readable by you only",
                self._why_not,
                self.file,
            )
        write_bytes_atomic(self.file, token.encode("ascii") + b"\n")  # private to its owner
        return token


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def _checked(token: str) -> str:
    if len(token) < MIN_TOKEN_LENGTH:
        raise CascadeError(
            f"{TOKEN_ENV} is too short to be a safe API token",
            subject="API token",
            hint=f"Use at least {MIN_TOKEN_LENGTH} random characters, or unset it",
        )
    return token


def _failed(action: str, exc: Exception) -> CascadeError:
    return CascadeError(
        f"the OS keyring could not {action} the API token ({type(exc).__name__})",
        subject="API token",
        hint="Check that the keyring service is running and unlocked, then try again",
    )
