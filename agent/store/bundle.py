"""Export and import of one profile as a portable, password-encrypted bundle file.

A bundle is an :mod:`agent.store.crypto` envelope with the magic ``CASCADE-BUNDLE``: the format
version, the Argon2id parameters (:data:`~agent.store.crypto.DEFAULT_KDF`: t=3, m=64 MiB, p=1),
a random 16-byte salt and 12-byte nonce in a header authenticated as AES-GCM associated data,
then the AES-256-GCM ciphertext of a JSON payload::

    {"profile": {...}, "keys": {"<target_id>": "<key>"} | null,
     "exported_at": "2026-11-21T14:03:00Z", "cascade_version": "0.1.0"}

``keys`` is null for a layout shared without its keys. The profile travels as a plain dict
(the caller's codec makes and reads it), so this module knows nothing of the profile schema.

:func:`import_bundle` only reads: it returns the profile and keys and writes nothing, so a
failed import changes nothing by construction; the caller stores what it got.

Errors, one class per thing a person can do something about::

    CascadeError
    └── BundleError              the bundle cannot be written (a short password, a file that
        │                        exists, a disk that refuses) or read (I/O)
        ├── NotABundle           the file is not a Cascade bundle at all
        ├── BundleTruncated      the file is cut short (an unfinished copy or download)
        ├── BundleDamaged        a byte changed: damaged or altered
        ├── WrongBundlePassword  the password does not open it
        └── BundleTooNew         made by a newer Cascade
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent import __version__
from agent.core.redact import REDACTOR
from agent.errors import CascadeError
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
    "MIN_PASSWORD_LENGTH",
    "BundleDamaged",
    "BundleError",
    "BundleTooNew",
    "BundleTruncated",
    "NotABundle",
    "WrongBundlePassword",
    "export_bundle",
    "import_bundle",
]

MAGIC = b"CASCADE-BUNDLE"
#: A bundle leaves the machine; a password shorter than this is refused on export.
MIN_PASSWORD_LENGTH = 8

Keys = dict[str, str]


class BundleError(CascadeError):
    """Raised when a bundle cannot be written, or read from disk; the subclasses say what is
    wrong with a bundle's contents."""


class NotABundle(BundleError):
    """Raised when the file is not a Cascade bundle at all."""


class BundleTruncated(BundleError):
    """Raised when the bundle is shorter than its own header says."""


class BundleDamaged(BundleError):
    """Raised when a check fails: the bundle was damaged or altered."""


class WrongBundlePassword(BundleError):
    """Raised when the password does not open the bundle."""


class BundleTooNew(BundleError):
    """Raised when the bundle was made by a newer Cascade than this one."""


def export_bundle(
    profile_dict: dict[str, Any],
    keys: Keys | None,
    password: str,
    path: Path,
    *,
    overwrite: bool = False,
    kdf: KdfParams = DEFAULT_KDF,
    now: datetime | None = None,
) -> None:
    """Write ``profile_dict`` and its ``keys`` (None: a layout without keys) to ``path``,
    encrypted with ``password``.

    The file appears complete or not at all (temporary file, fsync, rename). An existing file
    is refused unless ``overwrite``. ``kdf`` is the Argon2id cost (the default is what Cascade
    writes; tests pass cheaper settings); ``now`` stamps ``exported_at``.
    """
    path = Path(path)
    subject = f"bundle {path}"
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BundleError(
            "the password is too short to protect stream keys",
            subject=subject,
            hint=f"Use at least {MIN_PASSWORD_LENGTH} characters; nothing was written",
        )
    REDACTOR.add(password)
    if keys is not None:
        for target_id, key in keys.items():
            if not isinstance(target_id, str) or not isinstance(key, str) or not key:
                raise BundleError(
                    f"the key of target '{target_id}' is not a usable stream key",
                    subject=subject,
                    hint="Nothing was written",
                )
            REDACTOR.add(key)
    if path.exists() and not overwrite:
        raise BundleError(
            "the file already exists",
            subject=subject,
            hint="Choose another name, or confirm that it may be replaced",
        )
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    payload = json.dumps(
        {
            "profile": profile_dict,
            "keys": keys,
            "exported_at": stamp,
            "cascade_version": __version__,
        },
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")
    try:
        write_bytes_atomic(path, seal(payload, password, magic=MAGIC, params=kdf))
    except OSError as exc:
        raise BundleError(
            f"could not be written: {exc.strerror or exc}",
            subject=subject,
            hint=f"Check the free space and the permissions of {path.parent}",
        ) from exc


def import_bundle(path: Path, password: str) -> tuple[dict[str, Any], Keys | None]:
    """Read a bundle: ``(profile_dict, keys)``, ``keys`` None for a layout without keys.

    Writes nothing. Every key read is registered with the redactor. Raises one of the
    :class:`BundleError` subclasses for a foreign, truncated, damaged or newer file, or a
    wrong password.
    """
    path = Path(path)
    subject = f"bundle {path}"
    try:
        size = path.stat().st_size
        if size > MAX_BODY_BYTES + 1024:
            raise NotABundle(
                f"the file is {size} bytes, far more than a bundle holds",
                subject=subject,
                hint="Check that you chose the file `cascade profile export` wrote",
            )
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"could not be read: {exc.strerror or exc}", subject=subject) from exc
    REDACTOR.add(password)
    try:
        plain = unseal(data, password, magic=MAGIC)
    except EnvelopeError as exc:
        raise _translate(exc, subject) from exc
    return _decode(plain, subject)


def _translate(exc: EnvelopeError, subject: str) -> BundleError:
    nothing = "Nothing was changed"
    if exc.fault is Fault.NOT_OURS:
        return NotABundle(
            "is not a Cascade bundle",
            subject=subject,
            hint=f"Check that you chose the file `cascade profile export` wrote. {nothing}",
        )
    if exc.fault is Fault.TRUNCATED:
        return BundleTruncated(
            f"is cut short ({exc.what})",
            subject=subject,
            hint=f"Copy or download it again, completely. {nothing}",
        )
    if exc.fault is Fault.WRONG_PASSWORD:
        return WrongBundlePassword(
            "the password is wrong",
            subject=subject,
            hint=f"Use the password given when it was exported. {nothing}",
        )
    if exc.fault is Fault.TOO_NEW:
        return BundleTooNew(
            f"was made by a newer Cascade (bundle format {exc.version})",
            subject=subject,
            hint=f"Update Cascade on this machine, then import it again. {nothing}",
        )
    return BundleDamaged(
        f"is damaged or was altered ({exc.what})",
        subject=subject,
        hint=f"Export it again from the original machine. {nothing}",
    )


def _decode(plain: bytes, subject: str) -> tuple[dict[str, Any], Keys | None]:
    """The profile and keys of an authenticated payload; anything else is refused."""
    odd = BundleDamaged(
        "holds something other than a Cascade profile",
        subject=subject,
        hint="Export it again from the original machine. Nothing was changed",
    )
    try:
        data = json.loads(plain.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise odd from None
    if not isinstance(data, dict) or not isinstance(data.get("profile"), dict):
        raise odd
    keys = data.get("keys")
    if keys is not None:
        if not isinstance(keys, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in keys.items()
        ):
            raise odd
        for key in keys.values():
            REDACTOR.add(key)
    profile: dict[str, Any] = data["profile"]
    return profile, keys
