"""A :class:`~agent.core.model.Profile` to and from JSON: schema version, migrations, type checks.

What :func:`profile_to_dict` writes (schema version 1)::

    {
      "schema_version": 1,
      "name": "default",
      "ingest": {"kind": "rtmp", "bind": "127.0.0.1", "port": 1935, "app": "live", "key": "",
                 "url": "", "srt_latency_ms": 120},
      "groups": [
        {"id": "main", "name": "", "mode": "passthrough",
         "video": {"codec": "libx264", "width": null, ...}, "audio": {"codec": "copy", ...},
         "targets": [{"id": "youtube", "platform": "youtube", "name": "", "url": "",
                      "key_ref": "keyring", "enabled": true, "backup": false}],
         "armed": false}
      ]
    }

The fields are the model's own dataclass fields, read from its type hints, so a field added to
the model is stored without touching this module. One is never stored: a target's ``key``
(the stream key itself) — only ``key_ref`` says where the key lives: ``"keyring"`` or
``"${ENV_VAR}"``.

:func:`profile_from_dict` reads any schema version up to :data:`SCHEMA_VERSION`:

- an older layout is brought up to date by the chain in :data:`MIGRATIONS` (a file without
  ``schema_version`` is version 0);
- a newer one is refused with :class:`NewerSchema`, and the caller must leave the file alone;
- a value of the wrong type is a :class:`~agent.core.validate.ValidationError` whose ``field``
  locates it by position (``groups[0].video.bitrate_kbps: expected a whole number, got
  "fast"``); values of ``url``, ``key`` and ``key_ref`` are never quoted, since a pasted
  stream key may sit in any of them;
- an unknown key is ignored with a warning; a stream key found in a target is ignored too;
- finally :func:`~agent.core.validate.validate_profile` checks the result (``caps=None``).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import json
import logging
import re
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

from agent.core.model import Profile, Target
from agent.core.validate import ValidationError, validate_profile
from agent.store.atomic import StoreError

log = logging.getLogger(__name__)

__all__ = [
    "KEYRING_REF",
    "MIGRATIONS",
    "SCHEMA_KEY",
    "SCHEMA_VERSION",
    "NewerSchema",
    "check_key_ref",
    "check_profile",
    "env_key_ref",
    "migrate",
    "profile_from_dict",
    "profile_to_dict",
]

SCHEMA_VERSION = 1
SCHEMA_KEY = "schema_version"

KEYRING_REF = "keyring"
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")

# (dataclass, field) pairs that exist only in memory.
_NEVER_STORED: dict[type, frozenset[str]] = {Target: frozenset({"key"})}
# Fields whose value is never quoted in a message: any of them may hold a pasted stream key.
_UNQUOTED = frozenset({"url", "key", "key_ref"})

JsonObject = dict[str, Any]


class NewerSchema(StoreError):
    """Raised when a profile was saved by a newer Cascade: this one must neither read it
    (it would drop what it does not know) nor overwrite it."""

    def __init__(self, found: int, *, subject: str | None = None) -> None:
        self.found = found
        super().__init__(
            f"it was saved by a newer version of Cascade (profile schema {found}; this "
            f"version reads up to {SCHEMA_VERSION})",
            subject=subject,
            hint="Update Cascade to use it; the file was left untouched",
        )


# --- key references ---------------------------------------------------------------------------


def env_key_ref(variable: str) -> str:
    """The key reference for an environment variable: ``env_key_ref("YT_KEY") == "${YT_KEY}"``."""
    ref = f"${{{variable}}}"
    if not _ENV_REF.match(ref):
        raise ValidationError(
            "an environment variable's name may only hold letters, digits and '_', and may "
            "not start with a digit",
            field="key_ref",
            hint="Use a name such as YOUTUBE_KEY",
        )
    return ref


def check_key_ref(ref: object, *, field: str, subject: str | None = None) -> None:
    """Raise :class:`ValidationError` unless ``ref`` is None, ``"keyring"`` or ``"${NAME}"``.

    The value is never quoted: a person may have pasted the key itself where its reference
    belongs.
    """
    if ref is None or ref == KEYRING_REF or (isinstance(ref, str) and _ENV_REF.match(ref)):
        return
    raise ValidationError(
        'the key reference must be "keyring" or "${ENV_VAR}" (the key itself never goes in '
        "the profile)",
        field=field,
        subject=subject,
        hint="Set the key again with 'cascade key set TARGET'",
    )


# --- migrations -------------------------------------------------------------------------------


def _dicts(value: object) -> Iterator[JsonObject]:
    """The objects in a list, skipping anything else: the decoder reports wrong shapes."""
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def _v0_to_v1(data: JsonObject) -> JsonObject:
    """Version 0, the layout before schema versions, to version 1.

    Version 0 had no ``mode``: a group with an ``encode`` object (``{"video": …, "audio":
    …}``) re-encoded, one without it passed the source through. Targets named their key with
    ``stream_key_env: "NAME"`` or ``stream_key_in_keyring: true``, where version 1 has
    ``key_ref: "${NAME}"`` or ``"keyring"``.
    """
    data = copy.deepcopy(data)
    for group in _dicts(data.get("groups")):
        encode = group.pop("encode", None)
        group.setdefault("mode", "reencode" if encode else "passthrough")
        if isinstance(encode, dict):
            for part in ("video", "audio"):
                if part in encode:
                    group.setdefault(part, encode[part])
        for target in _dicts(group.get("targets")):
            env = target.pop("stream_key_env", None)
            in_keyring = target.pop("stream_key_in_keyring", None)
            if "key_ref" in target:
                continue
            if isinstance(env, str) and env:
                target["key_ref"] = f"${{{env}}}"
            elif in_keyring is True:
                target["key_ref"] = KEYRING_REF
    return data


# MIGRATIONS[n] turns a version-n object into a version-(n+1) one, without changing its input.
MIGRATIONS: dict[int, Callable[[JsonObject], JsonObject]] = {0: _v0_to_v1}


def migrate(data: JsonObject) -> JsonObject:
    """``data`` brought up to :data:`SCHEMA_VERSION`; the input is left unchanged.

    Raises :class:`NewerSchema` for a version above it, :class:`ValidationError` for a
    version that is not a whole number.
    """
    version = data.get(SCHEMA_KEY, 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ValidationError(
            f"expected a whole number, got {_shown(version)}",
            field=SCHEMA_KEY,
            subject=SCHEMA_KEY,
            hint="The file was edited by hand or damaged",
        )
    if version > SCHEMA_VERSION:
        raise NewerSchema(version)
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version += 1
        data[SCHEMA_KEY] = version
    return data


# --- encoding ---------------------------------------------------------------------------------


@functools.cache
def _stored_fields(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """(name, type hint, required) of each stored field of a model dataclass, in order."""
    hints = typing.get_type_hints(cls)
    skip = _NEVER_STORED.get(cls, frozenset())
    return tuple(
        (
            f.name,
            hints[f.name],
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
        if f.name not in skip
    )


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _encode(getattr(value, name)) for name, _, _ in _stored_fields(type(value))}
    if isinstance(value, enum.Enum):  # before str: a StrEnum is a str too
        return value.value
    if isinstance(value, list):
        return [_encode(item) for item in value]
    return value


def profile_to_dict(profile: Profile) -> JsonObject:
    """The profile as a JSON-ready object, with its schema version; no stream key in it."""
    body = _encode(profile)
    assert isinstance(body, dict)
    return {SCHEMA_KEY: SCHEMA_VERSION, **body}


# --- decoding ---------------------------------------------------------------------------------


def _shown(value: object) -> str:
    """A value as JSON, cut short, for a message."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else f"{text[:36]}...{text[-1]}"


def _kind(value: object) -> str:
    """What a value is, without its content (for fields that may hold a secret)."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return "a number"
    return _shown(value)


def _wrong(where: str, expected: str, value: object, *, quote: bool) -> ValidationError:
    got = _shown(value) if quote else _kind(value)
    return ValidationError(f"expected {expected}, got {got}", field=where, subject=where)


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


class _Decoder:
    """Walks a JSON object along the model's type hints, collecting warnings."""

    def __init__(self, warnings: list[str]) -> None:
        self.warnings = warnings

    def value(self, hint: Any, value: Any, where: str, *, quote: bool) -> Any:
        origin = typing.get_origin(hint)
        if origin is types.UnionType or origin is typing.Union:
            if value is None:
                return None
            # The model's unions are all "X | None".
            (inner,) = (arg for arg in typing.get_args(hint) if arg is not type(None))
            return self.value(inner, value, where, quote=quote)
        if origin is list:
            if not isinstance(value, list):
                raise _wrong(where, "a list", value, quote=quote)
            (item,) = typing.get_args(hint)
            return [
                self.value(item, element, f"{where}[{index}]", quote=quote)
                for index, element in enumerate(value)
            ]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return self.object(hint, value, where)
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return self.choice(hint, value, where, quote=quote)
        if hint is bool:
            if isinstance(value, bool):
                return value
            raise _wrong(where, "true or false", value, quote=quote)
        if hint is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            raise _wrong(where, "a whole number", value, quote=quote)
        if hint is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            raise _wrong(where, "a number", value, quote=quote)
        if hint is str:
            if isinstance(value, str):
                return value
            raise _wrong(where, "text", value, quote=quote)
        raise TypeError(f"the profile codec cannot read a field of type {hint!r} ({where})")

    def choice(self, enum_type: type[enum.Enum], value: Any, where: str, *, quote: bool) -> Any:
        if isinstance(value, str):
            for member in enum_type:
                if member.value == value:
                    return member
        choices = ", ".join(f'"{member.value}"' for member in enum_type)
        raise _wrong(where, f"one of {choices}", value, quote=quote)

    def object(self, cls: type, value: Any, where: str) -> Any:
        if not isinstance(value, dict):
            raise _wrong(where, "an object", value, quote=True)
        fields = _stored_fields(cls)
        names = {name for name, _, _ in fields}
        for key in value:
            if key in names:
                continue
            if key in _NEVER_STORED.get(cls, ()):
                # Never quote it, nor keep it: keys belong in the keyring.
                self.warnings.append(
                    f"{_join(where, str(key))}: a stream key was found in the profile file and "
                    "ignored; keys live in the keyring — set it with 'cascade key set'"
                )
            else:
                self.warnings.append(f"{_join(where, str(key))}: unknown setting, ignored")
        kwargs: dict[str, Any] = {}
        for name, hint, required in fields:
            path = _join(where, name)
            if name in value:
                kwargs[name] = self.value(hint, value[name], path, quote=name not in _UNQUOTED)
            elif required:
                raise ValidationError("is missing", field=path, subject=path)
        return cls(**kwargs)


def _check_key_refs(profile: Profile) -> None:
    for group_index, group in enumerate(profile.groups):
        for target_index, target in enumerate(group.targets):
            check_key_ref(
                target.key_ref,
                field=f"groups[{group_index}].targets[{target_index}].key_ref",
                subject=f"target '{target.id}'",
            )


def check_profile(profile: Profile) -> None:
    """Everything a stored profile must pass: its key references, then
    :func:`~agent.core.validate.validate_profile` (``caps=None``). Raises ValidationError."""
    _check_key_refs(profile)
    validate_profile(profile, None)


def profile_from_dict(data: object, *, warnings: list[str] | None = None) -> Profile:
    """A :class:`Profile` from a JSON object of any schema version up to the current one.

    Raises :class:`NewerSchema` for a newer schema and :class:`ValidationError` (naming the
    field) for anything wrong. Each ignored key is described in ``warnings``; without that
    list they are logged. The input is left unchanged.
    """
    if not isinstance(data, dict):
        raise _wrong("profile", "an object", data, quote=False)
    sink: list[str] = [] if warnings is None else warnings
    body = {key: value for key, value in migrate(data).items() if key != SCHEMA_KEY}
    profile = _Decoder(sink).object(Profile, body, "")
    assert isinstance(profile, Profile)
    check_profile(profile)
    if warnings is None:
        for warning in sink:
            log.warning("profile '%s': %s", profile.name, warning)
    return profile
