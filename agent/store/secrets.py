"""Where stream keys live: the OS keyring, or an encrypted vault where there is none.

A profile file never holds a key. Each target's ``key_ref`` says where its key is:

- ``"keyring"``: in the :class:`SecretStore` chosen by :func:`choose_store`, under the profile's
  name and the target id;
- ``"${ENV_VAR}"``: in an environment variable, read when the target starts;
- ``None``: no stored key (``Target.key``, held in memory only, is used as it is: tests and
  ``cascade demo`` set it directly).

:func:`resolve_key` follows that reference. Every key it, or a store, obtains is registered with
:data:`agent.core.redact.REDACTOR` before anything could print it, and no error message built
here contains a key, whole or in part.

Stores:

- :class:`KeyringStore`: the ``keyring`` package (Windows Credential Locker, macOS Keychain,
  Secret Service on Linux), service ``cascade-agent``, one entry ``<profile>/<target_id>`` per
  target. Backends that do not protect secrets are refused: keyring's ``fail`` and ``null``
  backends, everything from ``keyrings.alt``, and anything whose name says "plaintext". When
  keyring chains several backends, only the acceptable ones are considered and the first of
  them is used.
- :class:`~agent.store.vault.VaultStore`: one AES-256-GCM file in the config directory, for
  machines without a usable keyring (a headless server).

Errors::

    CascadeError
    └── SecretStoreError        a stream key could not be stored, read or found
        ├── KeyringRefused      keyring's backend is missing or unsafe (fail, null,
        │                       keyrings.alt, plaintext)
        ├── KeyringFailed       the OS keyring refused an operation (locked, service gone,
        │                       a key too long for Windows)
        ├── NoSecretStore       neither a usable keyring nor a vault passphrase
        └── MissingKey          a target's key is not where its key_ref says

The vault's own errors are :class:`agent.store.vault.VaultError` and its subclasses.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import keyring
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null
from keyring.errors import KeyringLocked, PasswordDeleteError

from agent.core.model import Target
from agent.core.redact import REDACTOR
from agent.errors import CascadeError, ConfigError
from agent.store.crypto import DEFAULT_KDF, KdfParams
from agent.store.vault import VAULT_FILENAME, VaultStore

__all__ = [
    "KEYRING_REF",
    "SERVICE_NAME",
    "VAULT_PASSPHRASE_ENV",
    "KeyringFailed",
    "KeyringRefused",
    "KeyringStore",
    "MissingKey",
    "NoSecretStore",
    "SecretStore",
    "SecretStoreError",
    "choose_store",
    "refusal",
    "resolve_key",
]

#: The keyring service every Cascade entry is filed under.
SERVICE_NAME = "cascade-agent"
#: The environment variable that unlocks (or creates) the vault without a prompt.
VAULT_PASSPHRASE_ENV = "CASCADE_VAULT_PASSPHRASE"
#: ``key_ref`` value: the key is in the secret store.
KEYRING_REF = "keyring"

# CredWrite refuses a blob above CRED_MAX_CREDENTIAL_BLOB_SIZE (5 * 512 bytes), and keyring
# stores the password as UTF-16: about 1280 characters. Real stream keys are far shorter.
_WINDOWS_BLOB_LIMIT = 2560
_WINDOWS_MODULE = "keyring.backends.Windows"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PROBE_USER = "cascade-probe"  # read (never written) to see whether the keyring answers

_FRIENDLY = {
    "keyring.backends.SecretService": "Secret Service",
    "keyring.backends.libsecret": "Secret Service (libsecret)",
    "keyring.backends.kwallet": "KWallet",
    "keyring.backends.macOS": "macOS Keychain",
    _WINDOWS_MODULE: "Windows Credential Locker",
}

_OPTIONS = (
    "Either install and unlock an OS keyring (on Linux a Secret Service such as gnome-keyring "
    f"or KWallet), or set {VAULT_PASSPHRASE_ENV} to keep keys in an encrypted file in the "
    "config directory, or give each stream key as a ${ENV_VAR} reference"
)


class SecretStoreError(CascadeError):
    """Root of the errors met while storing, reading or finding a stream key."""


class KeyringRefused(SecretStoreError):
    """Raised when keyring's backend is missing or unsafe: the fail or null backend,
    keyrings.alt, or anything that keeps secrets in plain text."""


class KeyringFailed(SecretStoreError):
    """Raised when the OS keyring refuses an operation: locked, its service gone, or a key too
    long for it."""


class NoSecretStore(SecretStoreError):
    """Raised by :func:`choose_store` when there is neither a usable keyring nor a vault
    passphrase."""


class MissingKey(SecretStoreError):
    """Raised by :func:`resolve_key` when a target's key is not where its ``key_ref`` says."""


class SecretStore(Protocol):
    """Where ``"keyring"`` keys live: one entry per profile and target."""

    def get(self, profile: str, target_id: str) -> str | None:
        """The stored key, or None when there is none."""
        ...

    def set(self, profile: str, target_id: str, key: str) -> None:
        """Store or replace the key."""
        ...

    def delete(self, profile: str, target_id: str) -> bool:
        """Forget the key; False when there was none."""
        ...

    def describe(self) -> str:
        """Which backend this is and why it is in use, for ``cascade doctor``."""
        ...


# --- keyring ------------------------------------------------------------------------------


def _qualified(backend: object) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def _friendly(backend: object) -> str:
    module = type(backend).__module__
    for prefix, name in _FRIENDLY.items():
        if module == prefix or module.startswith(prefix + "."):
            return name
    return _qualified(backend)


def refusal(backend: object) -> str | None:
    """Why Cascade refuses this keyring backend, or None when it is acceptable."""
    module = type(backend).__module__
    if isinstance(backend, fail.Keyring):
        return "no usable OS keyring was found (keyring fell back to its fail backend)"
    if isinstance(backend, null.Keyring):
        return "keyring's null backend throws secrets away"
    if module == "keyrings.alt" or module.startswith("keyrings.alt."):
        return (
            f"{_qualified(backend)} comes from keyrings.alt, which keeps secrets in a file "
            "without the operating system's protection"
        )
    if "plaintext" in _qualified(backend).lower():
        return f"{_qualified(backend)} keeps secrets in plain text"
    return None


def _vet(backend: KeyringBackend) -> tuple[KeyringBackend, list[str]]:
    """The backend to use and notes on what was left out; :class:`KeyringRefused` if none."""
    if not isinstance(backend, chainer.ChainerBackend):
        why = refusal(backend)
        if why:
            raise KeyringRefused(why, subject="OS keyring", hint=_OPTIONS)
        return backend, []
    accepted: list[KeyringBackend] = []
    notes: list[str] = []
    for member in backend.backends:
        why = refusal(member)
        if why:
            notes.append(f"left out of keyring's chain: {why}")
        else:
            accepted.append(member)
    if not accepted:
        reasons = "; ".join(notes) or "it chains no backend at all"
        raise KeyringRefused(
            f"no acceptable backend in keyring's chain ({reasons})",
            subject="OS keyring",
            hint=_OPTIONS,
        )
    # Keys go to one place only: the chain's own order puts the preferred backend first.
    notes.extend(f"not used: {_qualified(other)}" for other in accepted[1:])
    return accepted[0], notes


def _username(profile: str, target_id: str) -> str:
    # Target ids are slugs without "/", so "<profile>/<target>" cannot be ambiguous.
    if not profile:
        raise ConfigError("a stream key needs a profile name", subject=f"target '{target_id}'")
    if not target_id or "/" in target_id:
        raise ConfigError(f"'{target_id}' is not a target id a key can be stored under")
    return f"{profile}/{target_id}"


class KeyringStore:
    """A :class:`SecretStore` in the OS keyring through the ``keyring`` package.

    ``backend`` defaults to ``keyring.get_keyring()``; an unacceptable one raises
    :class:`KeyringRefused` here, before any key is handled. ``reason`` says why this store
    was chosen, for :meth:`describe`.
    """

    def __init__(self, backend: KeyringBackend | None = None, *, reason: str | None = None) -> None:
        if backend is None:
            try:
                backend = keyring.get_keyring()
            except Exception as exc:  # a bad PYTHON_KEYRING_BACKEND or keyringrc.cfg, mostly
                raise KeyringRefused(
                    f"keyring could not load its backend ({type(exc).__name__}: {exc})",
                    subject="OS keyring",
                    hint=(
                        "Check the PYTHON_KEYRING_BACKEND environment variable and keyring's "
                        f"keyringrc.cfg. {_OPTIONS}"
                    ),
                ) from exc
        self._backend, self._notes = _vet(backend)
        self._reason = reason

    @property
    def backend(self) -> KeyringBackend:
        """The keyring backend the keys go to."""
        return self._backend

    def describe(self) -> str:
        """The backend in use, where entries are filed, and what was left out and why."""
        text = (
            f"OS keyring: {_friendly(self._backend)} ({_qualified(self._backend)}); entries "
            f"under service '{SERVICE_NAME}', named '<profile>/<target>'"
        )
        for note in self._notes:
            text += f"; {note}"
        return f"{text}; {self._reason}" if self._reason else text

    def check(self) -> None:
        """Read one entry, so a locked or unreachable keyring shows now and not at the first
        target. Raises :class:`KeyringFailed`."""
        try:
            self._backend.get_password(SERVICE_NAME, _PROBE_USER)
        except Exception as exc:  # a foreign backend's errors: translated
            raise self._failed("reach", None, None, exc) from exc

    def get(self, profile: str, target_id: str) -> str | None:
        """The stored key, registered with the redactor; None when there is none."""
        user = _username(profile, target_id)
        try:
            key = self._backend.get_password(SERVICE_NAME, user)
        except Exception as exc:  # backends raise many types: translated
            raise self._failed("read", profile, target_id, exc) from exc
        if key is not None:
            REDACTOR.add(key)
        return key

    def set(self, profile: str, target_id: str, key: str) -> None:
        """Store or replace the key of ``target_id`` in ``profile``."""
        user = _username(profile, target_id)
        if not key:
            raise ConfigError("the stream key is empty", subject=f"target '{target_id}'")
        REDACTOR.add(key)
        if (
            type(self._backend).__module__ == _WINDOWS_MODULE
            and len(key.encode("utf-16-le")) > _WINDOWS_BLOB_LIMIT
        ):
            raise KeyringFailed(
                "its stream key is longer than Windows Credential Locker can keep "
                f"({_WINDOWS_BLOB_LIMIT} bytes, about {_WINDOWS_BLOB_LIMIT // 2} characters)",
                subject=f"target '{target_id}'",
                hint="Check that only the key was pasted, or give it as a ${ENV_VAR} reference",
            )
        try:
            self._backend.set_password(SERVICE_NAME, user, key)
        except Exception as exc:  # backends raise many types: translated
            raise self._failed("save", profile, target_id, exc) from exc

    def delete(self, profile: str, target_id: str) -> bool:
        """Forget the key; False when there was none."""
        if self.get(profile, target_id) is None:
            return False
        try:
            self._backend.delete_password(SERVICE_NAME, _username(profile, target_id))
        except PasswordDeleteError:
            return False  # gone between the read and the delete: what was asked for
        except Exception as exc:  # backends raise many types: translated
            raise self._failed("delete", profile, target_id, exc) from exc
        return True

    def _failed(
        self, action: str, profile: str | None, target_id: str | None, exc: Exception
    ) -> KeyringFailed:
        subject = f"target '{target_id}'" if target_id else "OS keyring"
        where = f"the OS keyring ({_friendly(self._backend)})"
        thing = f"the stream key of profile '{profile}'" if profile else "its entries"
        if isinstance(exc, KeyringLocked):
            return KeyringFailed(
                f"{where} is locked, so Cascade could not {action} {thing}",
                subject=subject,
                hint=(
                    "Unlock it (log in to the desktop session, or unlock the login keyring in "
                    "your keyring manager) and try again"
                ),
            )
        # A backend's message is shown for diagnosis, redacted in case it echoes its input.
        detail = REDACTOR.redact(str(exc)).strip()
        detail = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        return KeyringFailed(
            f"{where} could not {action} {thing} ({detail})",
            subject=subject,
            hint="Check that the keyring service is running and unlocked, then try again",
        )


# --- choosing a store -------------------------------------------------------------------


def choose_store(
    config_dir: Path,
    *,
    env: Mapping[str, str] = os.environ,
    passphrase: Callable[[], str] | None = None,
    backend: KeyringBackend | None = None,
    kdf: KdfParams = DEFAULT_KDF,
) -> SecretStore:
    """The store for this machine's ``"keyring"`` keys, checked and ready.

    In order:

    1. a vault already in ``config_dir`` stays in use (the keys are there), unlocked with
       ``CASCADE_VAULT_PASSPHRASE`` or the ``passphrase`` callback;
    2. the OS keyring, if its backend is acceptable and it answers;
    3. a new vault, when a passphrase is available;
    4. otherwise :class:`NoSecretStore`, explaining the options.

    ``passphrase`` is called at most once, only when a vault needs it (to prompt a person).
    ``backend`` replaces ``keyring.get_keyring()``; ``kdf`` is the vault's Argon2id cost.
    Targets whose keys are ``${ENV_VAR}`` references need no store at all.
    """
    vault_path = config_dir / VAULT_FILENAME
    if vault_path.exists():
        secret = _passphrase(env, passphrase)
        if secret is None:
            raise NoSecretStore(
                f"the stream keys are in the encrypted vault {vault_path}, which needs its "
                "passphrase",
                hint=f"Set {VAULT_PASSPHRASE_ENV}, or start Cascade where it can ask for it",
            )
        vault = VaultStore(
            vault_path, secret, kdf=kdf, reason="in use because this config directory has one"
        )
        vault.unlock()
        return vault

    try:
        store = KeyringStore(backend, reason="the OS keyring is always preferred when usable")
        store.check()
    except SecretStoreError as exc:
        why = exc.what
    else:
        return store

    secret = _passphrase(env, passphrase)
    if secret is None:
        raise NoSecretStore(
            f"there is nowhere safe to keep stream keys: {why}",
            hint=_OPTIONS,
        )
    vault = VaultStore(vault_path, secret, kdf=kdf, reason=f"in use because {why}")
    vault.unlock()
    return vault


def _passphrase(env: Mapping[str, str], ask: Callable[[], str] | None) -> str | None:
    secret = env.get(VAULT_PASSPHRASE_ENV) or (ask() if ask is not None else None)
    return secret or None


# --- resolving a target's key ---------------------------------------------------------


def resolve_key(
    target: Target,
    store: SecretStore | None,
    profile_name: str,
    *,
    env: Mapping[str, str] = os.environ,
) -> str | None:
    """The stream key ``target`` starts with, registered with the redactor; None = no key.

    ``key_ref`` ``"${VAR}"`` reads the environment, ``"keyring"`` reads ``store`` under
    ``profile_name``, and None uses ``target.key`` (an in-memory key). A reference that leads
    nowhere raises :class:`MissingKey` naming the target and what to do.
    """
    subject = f"target '{target.id}'"
    command = f"`cascade key set {target.id}`"
    ref = target.key_ref
    if ref is None:
        key = target.key
    elif ref == KEYRING_REF:
        if store is None:
            raise MissingKey(
                "its stream key is kept in the secret store, and none is open",
                subject=subject,
                hint=_OPTIONS,
            )
        key = store.get(profile_name, target.id)
        if key is None:
            raise MissingKey(
                f"no stream key is stored for it in profile '{profile_name}'",
                subject=subject,
                hint=f"Store it with {command}",
            )
    else:
        match = _ENV_REF.fullmatch(ref)
        if match is None:
            # Never echo the reference: a person may have pasted the key itself there.
            raise ConfigError(
                "its key reference is not understood",
                subject=subject,
                hint=(
                    f"Use '{KEYRING_REF}' (the key is kept in the OS keyring or the vault) or "
                    "${NAME} (read from the environment variable NAME)"
                ),
            )
        name = match.group(1)
        value = env.get(name)
        if value is not None and value.strip():
            # Surrounding whitespace is never part of a key; a trailing newline from a
            # secrets file would break the URL.
            key = value.strip()
        else:
            state = "not set" if value is None else "empty"
            raise MissingKey(
                f"its stream key comes from the environment variable {name}, which is {state}",
                subject=subject,
                hint=f"Set it before starting Cascade, or store the key with {command}",
            )
    if key:
        REDACTOR.add(key)
    return key or None


def key_source(
    config_dir: Path,
    profile_name: str,
    *,
    env: Mapping[str, str] = os.environ,
    passphrase: Callable[[], str] | None = None,
) -> Callable[[Target], str | None]:
    """The relay's key source for a stored profile: :func:`resolve_key` with a secret store
    opened only when a target actually keeps its key there (``${ENV}`` keys need none)."""
    opened: list[SecretStore] = []

    def keys(target: Target) -> str | None:
        store = None
        if target.key_ref == KEYRING_REF:
            if not opened:
                opened.append(choose_store(config_dir, env=env, passphrase=passphrase))
            store = opened[0]
        return resolve_key(target, store, profile_name, env=env)

    return keys
