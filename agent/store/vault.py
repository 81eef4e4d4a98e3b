"""The encrypted file that keeps stream keys on a machine without a usable OS keyring.

One file, ``<config_dir>/secrets.vault``, holds every key of every profile as JSON
(``{"format": 1, "keys": {profile: {target_id: key}}}``) sealed in a
:mod:`agent.store.crypto` envelope: AES-256-GCM, the key derived from the passphrase by
Argon2id (:data:`~agent.store.crypto.DEFAULT_KDF`: t=3, m=64 MiB, p=1), a fresh random 16-byte
salt and 12-byte nonce on every write, and a versioned header authenticated as AAD.

The passphrase comes from ``CASCADE_VAULT_PASSPHRASE`` or is typed once at start
(:func:`agent.store.secrets.choose_store` decides). Plain text is never an option.

Nothing is ever lost by a failed operation: a wrong passphrase or a damaged, truncated or newer
vault raises before anything is written, and every write replaces the whole file atomically
(temporary file, fsync, rename) under an exclusive lock, so another Cascade process writing at
the same moment cannot undo this one's change.

Errors::

    CascadeError
    └── VaultError               the vault could not be read or written (I/O, permissions)
        ├── NotAVault            secrets.vault is some other file
        ├── VaultTruncated       the file is cut short
        ├── VaultDamaged         a byte changed: damaged or altered
        ├── VaultWrongPassphrase the passphrase does not open it
        └── VaultTooNew          written by a newer Cascade
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from agent.core.redact import REDACTOR
from agent.errors import CascadeError, ConfigError
from agent.store.atomic import write_bytes_atomic
from agent.store.crypto import (
    DEFAULT_KDF,
    MAX_BODY_BYTES,
    EnvelopeError,
    Fault,
    KdfParams,
    seal,
    unseal,
)

__all__ = [
    "MAGIC",
    "MIN_PASSPHRASE_LENGTH",
    "VAULT_FILENAME",
    "NotAVault",
    "VaultDamaged",
    "VaultError",
    "VaultStore",
    "VaultTooNew",
    "VaultTruncated",
    "VaultWrongPassphrase",
]

VAULT_FILENAME = "secrets.vault"
MAGIC = b"CASCADE-VAULT"
#: Layout of the JSON inside the envelope (the envelope has its own version).
_PAYLOAD_FORMAT = 1
#: A vault protects every key at once; a passphrase shorter than this is refused.
MIN_PASSPHRASE_LENGTH = 8
_RECOVER = (
    "It was left unchanged. Restore it from a backup, or move it out of the config directory "
    "and store the keys again with `cascade key set TARGET`"
)

Secrets = dict[str, dict[str, str]]  # profile -> target id -> key


class VaultError(CascadeError):
    """Raised when the vault cannot be read or written (I/O, permissions, bad passphrase
    length); the subclasses say what is wrong with the file itself."""


class NotAVault(VaultError):
    """Raised when ``secrets.vault`` exists but is not a Cascade vault."""


class VaultTruncated(VaultError):
    """Raised when the vault file is shorter than its own header says."""


class VaultDamaged(VaultError):
    """Raised when a check fails: the vault was damaged or altered."""


class VaultWrongPassphrase(VaultError):
    """Raised when the passphrase does not open the vault."""


class VaultTooNew(VaultError):
    """Raised when the vault was written by a newer Cascade."""


_FAULTS: dict[Fault, type[VaultError]] = {
    Fault.NOT_OURS: NotAVault,
    Fault.TRUNCATED: VaultTruncated,
    Fault.DAMAGED: VaultDamaged,
    Fault.WRONG_PASSWORD: VaultWrongPassphrase,
    Fault.TOO_NEW: VaultTooNew,
}


class VaultStore:
    """A :class:`~agent.store.secrets.SecretStore` kept in one encrypted file.

    Creating the object touches nothing; :meth:`unlock` (or any operation) opens the file.
    ``reason`` says why the vault is in use, for :meth:`describe`.
    """

    def __init__(
        self,
        path: Path,
        passphrase: str,
        *,
        kdf: KdfParams = DEFAULT_KDF,
        reason: str | None = None,
    ) -> None:
        if len(passphrase) < MIN_PASSPHRASE_LENGTH:
            raise VaultError(
                "the vault passphrase is too short",
                subject="stream-key vault",
                hint=f"Use at least {MIN_PASSPHRASE_LENGTH} characters",
            )
        REDACTOR.add(passphrase)
        self._path = path
        self._passphrase = passphrase
        self._kdf = kdf
        self._reason = reason
        # The bytes last read or written and what they decrypt to: repeated reads of an
        # unchanged file cost no Argon2id derivation.
        self._cache: tuple[bytes, Secrets] | None = None

    @property
    def path(self) -> Path:
        """The vault file."""
        return self._path

    def describe(self) -> str:
        """Which backend this is, where, how it is protected, and why it is in use."""
        text = (
            f"encrypted vault {self._path} (AES-256-GCM, key from {self._kdf.describe()} "
            "over the vault passphrase)"
        )
        return f"{text}; {self._reason}" if self._reason else text

    def unlock(self) -> None:
        """Open the vault now, so a wrong passphrase shows at start rather than at the first
        target. A vault that does not exist yet is fine: the first :meth:`set` creates it."""
        self._load()

    def get(self, profile: str, target_id: str) -> str | None:
        """The stored key of ``target_id`` in ``profile``, or None."""
        return self._load().get(profile, {}).get(target_id)

    def set(self, profile: str, target_id: str, key: str) -> None:
        """Store (or replace) the key of ``target_id`` in ``profile``."""
        if not key:
            raise ConfigError("the stream key is empty", subject=f"target '{target_id}'")
        REDACTOR.add(key)

        def put(secrets: Secrets) -> bool:
            if secrets.get(profile, {}).get(target_id) == key:
                return False
            secrets.setdefault(profile, {})[target_id] = key
            return True

        self._update(put)

    def delete(self, profile: str, target_id: str) -> bool:
        """Forget the key of ``target_id`` in ``profile``; False when there was none."""

        def drop(secrets: Secrets) -> bool:
            keys = secrets.get(profile, {})
            if target_id not in keys:
                return False
            del keys[target_id]
            if not keys:
                del secrets[profile]
            return True

        return self._update(drop)

    # --- reading and writing the file -----------------------------------------------------

    def _subject(self) -> str:
        return f"stream-key vault {self._path}"

    def _load(self) -> Secrets:
        try:
            size = self._path.stat().st_size
            if size > MAX_BODY_BYTES + 1024:
                raise VaultDamaged(
                    f"the file is {size} bytes, far more than a vault holds",
                    subject=self._subject(),
                    hint=_RECOVER,
                )
            data = self._path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise VaultError(
                f"could not be read: {exc.strerror or exc}",
                subject=self._subject(),
                hint="Check its permissions",
            ) from exc
        if self._cache is not None and self._cache[0] == data:
            return _copy(self._cache[1])
        try:
            plain = unseal(data, self._passphrase, magic=MAGIC)
        except EnvelopeError as exc:
            raise _translate(exc, self._subject()) from exc
        secrets = _decode(plain, self._subject())
        for keys in secrets.values():
            for key in keys.values():
                REDACTOR.add(key)
        self._cache = (data, _copy(secrets))
        return secrets

    def _update(self, change: Callable[[Secrets], bool]) -> bool:
        """Read, change and rewrite the vault under the lock; False when nothing changed."""
        try:
            with _exclusive(self._path.with_name(self._path.name + ".lock")):
                return self._update_locked(change)
        except OSError as exc:  # the lock file itself: creating or locking it failed
            raise VaultError(
                f"could not be locked for writing: {exc.strerror or exc}",
                subject=self._subject(),
                hint=f"Check the permissions of {self._path.parent}; the vault is unchanged",
            ) from exc

    def _update_locked(self, change: Callable[[Secrets], bool]) -> bool:
        secrets = self._load()  # raises, leaving the file untouched, if it cannot open
        if not change(secrets):
            return False
        payload = json.dumps(
            {"format": _PAYLOAD_FORMAT, "keys": secrets}, ensure_ascii=False
        ).encode("utf-8")
        data = seal(payload, self._passphrase, magic=MAGIC, params=self._kdf)
        try:
            write_bytes_atomic(self._path, data)
        except OSError as exc:
            raise VaultError(
                f"could not be saved: {exc.strerror or exc}",
                subject=self._subject(),
                hint=(
                    "The previous vault is unchanged. Check the free space and the "
                    f"permissions of {self._path.parent}"
                ),
            ) from exc
        self._cache = (data, _copy(secrets))
        return True


def _copy(secrets: Secrets) -> Secrets:
    return {profile: dict(keys) for profile, keys in secrets.items()}


def _translate(exc: EnvelopeError, subject: str) -> VaultError:
    cls = _FAULTS[exc.fault]
    if exc.fault is Fault.NOT_OURS:
        return cls(
            "is not a Cascade vault",
            subject=subject,
            hint=(
                "Cascade did not touch it. Move it out of the config directory; then store the "
                "keys again with `cascade key set TARGET`"
            ),
        )
    if exc.fault is Fault.WRONG_PASSWORD:
        return cls(
            "the passphrase does not open it",
            subject=subject,
            hint=(
                "Check CASCADE_VAULT_PASSPHRASE or the passphrase you typed; the vault was left "
                "unchanged"
            ),
        )
    if exc.fault is Fault.TOO_NEW:
        return cls(
            f"was written by a newer Cascade (vault format {exc.version})",
            subject=subject,
            hint="Update Cascade to use it; it was left unchanged",
        )
    if exc.fault is Fault.TRUNCATED:
        return cls(f"is cut short: {exc.what}", subject=subject, hint=_RECOVER)
    return cls(f"is damaged or was altered: {exc.what}", subject=subject, hint=_RECOVER)


def _decode(plain: bytes, subject: str) -> Secrets:
    """The keys inside an authenticated payload. Only a Cascade bug could make this fail:
    the payload passed AES-GCM authentication, so nobody else wrote it."""
    try:
        data = json.loads(plain.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise VaultDamaged("holds unreadable contents", subject=subject, hint=_RECOVER) from None
    if not isinstance(data, dict) or data.get("format") != _PAYLOAD_FORMAT:
        raise VaultDamaged("holds contents of an unknown layout", subject=subject, hint=_RECOVER)
    keys = data.get("keys")
    if not isinstance(keys, dict) or not all(
        isinstance(profile, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in profile.items())
        for profile in keys.values()
    ):
        raise VaultDamaged("holds contents of an unknown layout", subject=subject, hint=_RECOVER)
    return {str(name): dict(profile) for name, profile in keys.items()}


# --- files --------------------------------------------------------------------------------
# A private helper until agent.store.atomic offers a byte-level write: its write_json_atomic
# serializes JSON and keeps a .bak, and a vault must keep no second copy of removed keys.


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (created if needed) for the block; another
    process writing the vault waits here instead of overwriting this one's change."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # retries for ~10 s, then OSError
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock on both systems
