"""Password-based encryption shared by the secrets vault and exported bundles.

One sealed file is a small binary *envelope*: AES-256-GCM over the payload, with the key
derived from a password by Argon2id, and a header that says how to open it. The header is
passed to AES-GCM as associated data, so it is authenticated: a changed salt, nonce, version or
KDF setting makes the file fail to open, exactly like a changed ciphertext byte.

Layout, version 1 (integers big-endian)::

    preamble — the same in every version, so any Cascade can tell "newer" from "damaged"
      magic           len(magic) bytes   b"CASCADE-BUNDLE", b"CASCADE-VAULT", ...
      version         u16                envelope format version (this module writes 1)
      header length   u16                bytes of the version's header after the preamble
      preamble CRC    u32                CRC-32 of the bytes above
    header, version 1 (69 bytes)
      kdf             u8                 1 = Argon2id (version 1.3)
      time cost       u32                Argon2 passes
      memory cost     u32                KiB
      parallelism     u32                lanes
      salt            16 bytes           random per write
      nonce           12 bytes           random per write
      body length     u64                bytes of ciphertext + tag that follow
      password check  16 bytes           bytes 32..48 of the Argon2id output
      header CRC      u32                CRC-32 of the preamble and the header before it
    body
      ciphertext || 16-byte GCM tag      AAD = preamble + header

Why the CRCs and the password check, when GCM already authenticates everything: GCM alone
cannot say *what* is wrong — a wrong password and a flipped byte both fail the same tag. The
CRCs (checked before any key is derived) catch accidental damage to the header, the stored
body length catches truncation, and the password check tells a wrong password from a damaged
body. None of them is a security measure; the GCM tag is. The password check lets an attacker
test a guess no faster than the tag would: each guess still costs one Argon2id derivation.

KDF parameters read from a file are bounded (:data:`KDF_LIMITS`) before use, so a crafted file
cannot make Cascade allocate gigabytes or spin for minutes.

Errors::

    CascadeError
    └── EnvelopeError     a sealed file cannot be opened; ``fault`` says why. The vault and
                          the bundle code translate it into their own exception classes.
"""

from __future__ import annotations

import enum
import hmac
import os
import struct
import unicodedata
import zlib
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.errors import CascadeError

__all__ = [
    "DEFAULT_KDF",
    "ENVELOPE_VERSION",
    "KDF_LIMITS",
    "MAX_BODY_BYTES",
    "EnvelopeError",
    "Fault",
    "KdfParams",
    "derive_key",
    "peek_params",
    "seal",
    "unseal",
]

#: The envelope format this module writes and the newest it reads.
ENVELOPE_VERSION = 1

SALT_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32  # AES-256
CHECK_BYTES = 16

_KDF_ARGON2ID = 1
_PREAMBLE_TAIL = struct.Struct(">HHI")  # version, header length, preamble CRC
_HEADER_V1 = struct.Struct(f">BIII{SALT_BYTES}s{NONCE_BYTES}sQ{CHECK_BYTES}s")
_CRC = struct.Struct(">I")
_HEADER_V1_LEN = _HEADER_V1.size + _CRC.size

#: A sealed payload is a profile or a handful of keys; anything near this is not ours.
MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id cost settings. The defaults are what Cascade writes: 3 passes over 64 MiB with
    one lane (about a quarter of a second on a desktop CPU). Tests pass cheaper ones."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 1

    def describe(self) -> str:
        """The parameters as a person reads them: ``Argon2id t=3 m=64 MiB p=1``."""
        if self.memory_kib % 1024 == 0:
            memory = f"{self.memory_kib // 1024} MiB"
        else:
            memory = f"{self.memory_kib} KiB"
        return f"Argon2id t={self.time_cost} m={memory} p={self.parallelism}"


#: What Cascade writes.
DEFAULT_KDF = KdfParams()


@dataclass(frozen=True, slots=True)
class _Limits:
    max_time_cost: int = 16
    max_memory_kib: int = 1024 * 1024  # 1 GiB
    max_parallelism: int = 16


#: The largest KDF settings Cascade agrees to run, whether writing or reading a file.
KDF_LIMITS = _Limits()


class Fault(enum.Enum):
    """Why an envelope could not be opened."""

    NOT_OURS = "not-ours"  # no magic: some other file
    TRUNCATED = "truncated"  # shorter than its own header says
    DAMAGED = "damaged"  # a check failed: damaged or altered
    WRONG_PASSWORD = "wrong-password"
    TOO_NEW = "too-new"  # written by a newer format version


class EnvelopeError(CascadeError):
    """Raised by :func:`unseal` when a file cannot be opened; ``fault`` says why and
    ``version`` holds the file's format version when it is known."""

    def __init__(self, fault: Fault, what: str, *, version: int | None = None) -> None:
        super().__init__(what)
        self.fault = fault
        self.version = version


def _check_params(params: KdfParams) -> str | None:
    """Why these KDF settings are unacceptable, or None."""
    limits = KDF_LIMITS
    if not 1 <= params.time_cost <= limits.max_time_cost:
        return f"time cost {params.time_cost} is outside 1..{limits.max_time_cost}"
    if not 1 <= params.parallelism <= limits.max_parallelism:
        return f"parallelism {params.parallelism} is outside 1..{limits.max_parallelism}"
    lowest = 8 * params.parallelism  # Argon2's own minimum
    if not lowest <= params.memory_kib <= limits.max_memory_kib:
        return f"memory cost {params.memory_kib} KiB is outside {lowest}..{limits.max_memory_kib}"
    return None


def _password_bytes(password: str) -> bytes:
    # NFC: the same password typed on macOS (which often produces decomposed accents) and on
    # Windows must give the same key.
    return unicodedata.normalize("NFC", password).encode("utf-8")


def derive_key(password: str, salt: bytes, params: KdfParams) -> tuple[bytes, bytes]:
    """The AES-256 key and the password check value for ``password`` and ``salt``."""
    problem = _check_params(params)
    if problem:
        raise ValueError(f"unusable Argon2id settings: {problem}")
    if not password:
        raise ValueError("an empty password cannot protect anything")
    raw = hash_secret_raw(
        secret=_password_bytes(password),
        salt=salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=KEY_BYTES + CHECK_BYTES,
        type=Type.ID,
    )
    return raw[:KEY_BYTES], raw[KEY_BYTES:]


def _preamble(magic: bytes, version: int, header_len: int) -> bytes:
    head = magic + struct.pack(">HH", version, header_len)
    return head + _CRC.pack(zlib.crc32(head))


def seal(
    plaintext: bytes, password: str, *, magic: bytes, params: KdfParams = DEFAULT_KDF
) -> bytes:
    """Encrypt ``plaintext`` into a version-1 envelope with a fresh random salt and nonce."""
    if len(plaintext) + TAG_BYTES > MAX_BODY_BYTES:
        raise ValueError(f"a sealed payload may hold at most {MAX_BODY_BYTES} bytes")
    salt = os.urandom(SALT_BYTES)
    nonce = os.urandom(NONCE_BYTES)
    key, check = derive_key(password, salt, params)
    preamble = _preamble(magic, ENVELOPE_VERSION, _HEADER_V1_LEN)
    fields = _HEADER_V1.pack(
        _KDF_ARGON2ID,
        params.time_cost,
        params.memory_kib,
        params.parallelism,
        salt,
        nonce,
        len(plaintext) + TAG_BYTES,
        check,
    )
    header = fields + _CRC.pack(zlib.crc32(preamble + fields))
    aad = preamble + header
    return aad + AESGCM(key).encrypt(nonce, plaintext, aad)


def peek_params(data: bytes, *, magic: bytes) -> KdfParams | None:
    """The KDF settings a well-formed version-1 envelope was written with, or None."""
    try:
        _, params, *_ = _parse(data, magic)
    except EnvelopeError:
        return None
    return params


def _parse(data: bytes, magic: bytes) -> tuple[bytes, KdfParams, bytes, bytes, bytes, bytes]:
    """Check everything that needs no password; return (aad, params, salt, nonce, check,
    body) or raise :class:`EnvelopeError`."""
    if not data:
        raise EnvelopeError(Fault.TRUNCATED, "the file is empty")
    if not data.startswith(magic):
        if len(data) < len(magic) and magic.startswith(data):
            raise EnvelopeError(Fault.TRUNCATED, "the file ends inside its header")
        raise EnvelopeError(Fault.NOT_OURS, "the file does not start with its signature")
    preamble_len = len(magic) + _PREAMBLE_TAIL.size
    if len(data) < preamble_len:
        raise EnvelopeError(Fault.TRUNCATED, "the file ends inside its header")
    version, header_len, crc = _PREAMBLE_TAIL.unpack_from(data, len(magic))
    if zlib.crc32(data[: preamble_len - _CRC.size]) != crc:
        raise EnvelopeError(Fault.DAMAGED, "its header is damaged (checksum mismatch)")
    if version > ENVELOPE_VERSION:
        raise EnvelopeError(Fault.TOO_NEW, f"it uses format version {version}", version=version)
    if version != ENVELOPE_VERSION or header_len != _HEADER_V1_LEN:
        raise EnvelopeError(
            Fault.DAMAGED, f"its header is malformed (version {version})", version=version
        )
    aad_len = preamble_len + header_len
    if len(data) < aad_len:
        raise EnvelopeError(Fault.TRUNCATED, "the file ends inside its header", version=version)
    (header_crc,) = _CRC.unpack_from(data, aad_len - _CRC.size)
    if zlib.crc32(data[: aad_len - _CRC.size]) != header_crc:
        raise EnvelopeError(
            Fault.DAMAGED, "its header is damaged (checksum mismatch)", version=version
        )
    kdf, time_cost, memory_kib, parallelism, salt, nonce, body_len, check = _HEADER_V1.unpack_from(
        data, preamble_len
    )
    if kdf != _KDF_ARGON2ID:
        raise EnvelopeError(Fault.DAMAGED, f"it names an unknown KDF ({kdf})", version=version)
    params = KdfParams(time_cost=time_cost, memory_kib=memory_kib, parallelism=parallelism)
    problem = _check_params(params)
    if problem:
        raise EnvelopeError(
            Fault.DAMAGED, f"its key-derivation settings are refused: {problem}", version=version
        )
    if not TAG_BYTES <= body_len <= MAX_BODY_BYTES:
        raise EnvelopeError(
            Fault.DAMAGED, f"its header gives an impossible length ({body_len})", version=version
        )
    end = aad_len + body_len
    if len(data) < end:
        raise EnvelopeError(
            Fault.TRUNCATED,
            f"the file is {len(data)} bytes where its header promises {end}",
            version=version,
        )
    if len(data) > end:
        raise EnvelopeError(
            Fault.DAMAGED,
            f"the file has {len(data) - end} unexpected bytes after its end",
            version=version,
        )
    return data[:aad_len], params, salt, nonce, check, data[aad_len:]


def unseal(data: bytes, password: str, *, magic: bytes) -> bytes:
    """Decrypt an envelope written by :func:`seal`, or raise :class:`EnvelopeError`.

    Every check that needs no password runs first, so a damaged or foreign file costs no key
    derivation and is never reported as a wrong password.
    """
    aad, params, salt, nonce, check, body = _parse(data, magic)
    if not password:
        raise EnvelopeError(Fault.WRONG_PASSWORD, "no password was given", version=1)
    key, expected = derive_key(password, salt, params)
    # Constant-time: how many leading bytes matched must not show in the timing.
    if not hmac.compare_digest(check, expected):
        raise EnvelopeError(Fault.WRONG_PASSWORD, "the password is wrong", version=1)
    try:
        return AESGCM(key).decrypt(nonce, body, aad)
    except InvalidTag:
        raise EnvelopeError(
            Fault.DAMAGED,
            "its contents fail authentication: the file was damaged or altered",
            version=1,
        ) from None
