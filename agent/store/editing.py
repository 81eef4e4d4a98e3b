"""Editing a profile: add, change and remove groups and targets, validated in one place.

The CLI and the API both call these functions, so a change is refused for the same reasons
with the same message whichever way it arrives. Each function is pure: it returns a new
:class:`Profile` and leaves the one it was given untouched, so a refused change changes
nothing. Changes go through the profile codec, so they are checked exactly as a profile file
is when it is loaded (types, key references, slugs, unique ids), and a typo in a setting's
name is refused rather than ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from agent.core.model import GroupMode, Profile
from agent.core.validate import ValidationError, validate_group, validate_slug
from agent.media.capabilities import Capabilities
from agent.store.codec import profile_from_dict, profile_to_dict

JsonObject = dict[str, Any]

_NESTED = frozenset({"video", "audio"})


def edit_ingest(profile: Profile, changes: Mapping[str, Any]) -> Profile:
    """A copy of ``profile`` with the ingest's settings changed (kind, bind, port, key...)."""
    data = profile_to_dict(profile)
    data["ingest"] = {**data["ingest"], **changes}
    return _checked(data, None, None)


def add_group(profile: Profile, spec: Mapping[str, Any], caps: Capabilities | None) -> Profile:
    """A copy of ``profile`` with a new group (``spec`` holds its settings; no targets yet)."""
    spec = dict(spec)
    group_id = validate_slug(spec.get("id"), "group id", field="id")
    _check_free(profile, group_id)
    if spec.get("targets"):
        raise ValidationError("add targets one by one after the group exists", field="targets")
    spec["targets"] = []
    data = profile_to_dict(profile)
    data["groups"].append(spec)
    return _check_encoding(_checked(data, caps, group_id), group_id, spec, caps)


def edit_group(
    profile: Profile, group_id: str, changes: Mapping[str, Any], caps: Capabilities | None
) -> Profile:
    """A copy of ``profile`` with one group's settings changed (``video``/``audio`` merge)."""
    profile.group(group_id)  # UnknownId naming the known groups
    if "targets" in changes:
        raise ValidationError("targets are added and removed one by one", field="targets")
    data = profile_to_dict(profile)
    group = _find(data["groups"], group_id)
    new_id = changes.get("id", group_id)
    if new_id != group_id:
        new_id = validate_slug(new_id, "group id", field="id")
        _check_free(profile, new_id)
    _merge(group, changes)
    return _check_encoding(_checked(data, caps, new_id), new_id, changes, caps)


def remove_group(profile: Profile, group_id: str) -> Profile:
    """A copy of ``profile`` without the group (and its targets)."""
    profile.group(group_id)
    data = profile_to_dict(profile)
    data["groups"] = [g for g in data["groups"] if g["id"] != group_id]
    return _checked(data, None, None)


def add_target(profile: Profile, group_id: str, spec: Mapping[str, Any]) -> Profile:
    """A copy of ``profile`` with a new target in ``group_id``. Keys are set separately."""
    profile.group(group_id)
    spec = dict(spec)
    if "key" in spec:
        raise ValidationError(
            "stream keys are never part of a profile; set it with 'cascade key set'",
            field="key",
        )
    target_id = validate_slug(spec.get("id"), "target id", field="id")
    _check_free(profile, target_id)
    data = profile_to_dict(profile)
    _find(data["groups"], group_id)["targets"].append(spec)
    return _checked(data, None, group_id)


def edit_target(profile: Profile, target_id: str, changes: Mapping[str, Any]) -> Profile:
    """A copy of ``profile`` with one target's settings changed."""
    group, _ = profile.target(target_id)  # UnknownId naming the known targets
    if "key" in changes:
        raise ValidationError(
            "stream keys are never part of a profile; set it with 'cascade key set'",
            field="key",
        )
    new_id = changes.get("id", target_id)
    if new_id != target_id:
        new_id = validate_slug(new_id, "target id", field="id")
        _check_free(profile, new_id)
    data = profile_to_dict(profile)
    targets = _find(data["groups"], group.id)["targets"]
    _merge(_find(targets, target_id), changes)
    return _checked(data, None, group.id)


def remove_target(profile: Profile, target_id: str) -> Profile:
    """A copy of ``profile`` without the target."""
    group, _ = profile.target(target_id)
    data = profile_to_dict(profile)
    g = _find(data["groups"], group.id)
    g["targets"] = [t for t in g["targets"] if t["id"] != target_id]
    return _checked(data, None, None)


def _check_free(profile: Profile, new_id: str) -> None:
    if new_id in profile.ids():
        raise ValidationError(
            f"the id '{new_id}' is already used by a group or target of profile "
            f"'{profile.name}'; ids must be unique so that 'cascade toggle {new_id}' is clear",
            field="id",
        )


def _find(items: list[JsonObject], item_id: str) -> JsonObject:
    return next(item for item in items if item["id"] == item_id)


def _merge(current: JsonObject, changes: Mapping[str, Any]) -> None:
    for key, value in changes.items():
        if key in _NESTED and isinstance(value, Mapping) and isinstance(current.get(key), dict):
            current[key] = {**current[key], **value}
        else:
            current[key] = value


def _check_encoding(
    profile: Profile, group_id: str, given: Mapping[str, Any], caps: Capabilities | None
) -> Profile:
    """Encoder settings given to a passthrough group are checked as well, although it uses
    them only once switched to re-encode: nonsense is refused when it is typed, so what a
    group keeps (and the API shows) is always valid."""
    group = profile.group(group_id)
    if group.mode != GroupMode.REENCODE and _NESTED & given.keys():
        validate_group(dataclasses.replace(group, mode=GroupMode.REENCODE, targets=[]), caps)
    return profile


def _checked(data: JsonObject, caps: Capabilities | None, group_id: str | None) -> Profile:
    warnings: list[str] = []
    profile = profile_from_dict(data, warnings=warnings)
    if warnings:  # an unknown setting in an edit is a typo, not an old file: refuse it
        field, _, message = warnings[0].partition(": ")
        # The codec says "ignored" for a file it loads; here nothing is ignored but refused.
        raise ValidationError(message.removesuffix(", ignored"), field=field.lstrip("."))
    if group_id is not None:
        validate_group(profile.group(group_id), caps)
    return profile
