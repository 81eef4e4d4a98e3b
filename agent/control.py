"""The operations every client calls: the API, the tray and (through the API) the CLI.

:class:`Control` joins the running :class:`~agent.core.agent.Agent` and the stored profiles.
Each operation is one method that checks, changes and saves in one step and answers with the
resulting state, so a Stream Deck button can show it. Edits go through
:mod:`agent.store.editing`, so they are refused for the same reasons, with the same messages,
as on the command line; the running relay then follows the saved profile, touching only what
changed (see :meth:`agent.core.relay.Relay.check`). Operations run one at a time.

The dashboard's views are here too: the recent log lines, the encoders the probe found
usable (and why the others are not), the agent-wide settings (FFmpeg, notifications, launch at
login) and the platform presets.

Errors are :class:`~agent.errors.CascadeError` subclasses: ``UnknownId`` and
``UnknownProfile`` (no such thing), ``ValidationError`` (a bad value; ``field`` says which),
``Conflict`` (not in this state; nothing changed) and the store's errors.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from agent import __version__
from agent.core.agent import Agent
from agent.core.egress import TargetStats
from agent.core.events import ShowRequested
from agent.core.logbook import iso_time
from agent.core.model import Platform, Profile, Target
from agent.core.platforms import PRESETS
from agent.core.push import KeySource
from agent.core.relay import Relay
from agent.core.validate import ValidationError, validate_slug
from agent.errors import CascadeError, Conflict, FFmpegError
from agent.media.args import AUDIO_CODECS
from agent.media.capabilities import FAMILIES, NOT_IN_BUILD, Capabilities, MediaKind
from agent.media.ffmpeg import FFmpegBinary, find_ffmpeg
from agent.store import editing
from agent.store.codec import KEYRING_REF, profile_to_dict
from agent.store.profiles import ProfileExists, ProfileStore, UnknownProfile
from agent.store.secrets import SecretStore

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]

#: The largest stream key accepted: platform keys are well under 200 characters.
MAX_KEY_LENGTH = 1024
#: The longest FFmpeg path accepted in the settings.
MAX_PATH_LENGTH = 4096

#: Settings ``PATCH /api/v1/settings`` changes; the API's own address needs a restart.
EDITABLE_SETTINGS = ("ffmpeg", "notifications", "autostart")
READ_ONLY_SETTINGS = ("api_port", "api_bind")


class Control:
    """One agent's operations, serialised, each answering with the resulting state."""

    def __init__(
        self,
        agent: Agent,
        store: ProfileStore,
        *,
        secrets: Callable[[], SecretStore],
        keys_for: Callable[[str], KeySource],
    ) -> None:
        self.agent = agent
        self.store = store
        self._secrets = secrets
        self._keys_for = keys_for
        self._lock = asyncio.Lock()

    @property
    def profile(self) -> Profile:
        return self.agent.profile

    # -- reading ----------------------------------------------------------------------------

    def status(self) -> JsonObject:
        """Ingest, every group and target with state and figures, and totals."""
        relay = self.agent.relay
        body = relay.status() if relay is not None else _offline_status(self.profile)
        problem = self.agent.ffmpeg_error
        if relay is None and problem is None:  # answered before the agent has found FFmpeg
            body["ingest"]["reason"] = "the agent is starting"
        return {
            "version": __version__,
            "profile": self.profile.name,
            "problem": str(problem) if problem is not None else "",
            **body,
        }

    def groups(self) -> list[JsonObject]:
        return list(self.status()["groups"])

    def group(self, group_id: str) -> JsonObject:
        """One group's state and figures, with its targets'."""
        self.profile.group(group_id)  # UnknownId
        return next(g for g in self.status()["groups"] if g["id"] == group_id)

    def target(self, target_id: str) -> JsonObject:
        """One target's state and figures, and its group's state."""
        group, _ = self.profile.target(target_id)  # UnknownId
        view = self.group(group.id)
        found = next(t for t in view["targets"] if t["id"] == target_id)
        return {**found, "group_state": view["state"]}

    def stats(self) -> JsonObject:
        """The figures alone: totals, the stream coming in, each group and target."""
        status = self.status()
        return {"ingest": status["ingest"], "totals": status["totals"], "groups": status["groups"]}

    def show(self, reason: str) -> JsonObject:
        """Ask the agent's windows (the tray, a dashboard) to show themselves."""
        self.agent.bus.publish(ShowRequested(reason=reason))
        return {"ok": True}

    # -- live operations --------------------------------------------------------------------

    async def group_action(self, group_id: str, action: str) -> JsonObject:
        """``start``, ``stop``, ``toggle``, ``arm`` or ``disarm`` a group; its new state."""
        async with self._lock:
            relay = await self._relay()
            self.profile.group(group_id)
            operations = {
                "start": relay.start_group,
                "stop": relay.stop_group,
                "toggle": relay.toggle_group,
                "arm": relay.arm_group,
                "disarm": relay.disarm_group,
            }
            await operations[action](group_id)
            if action in ("stop", "arm", "disarm", "toggle"):
                self._save(self.profile)  # arming is a standing order kept in the profile
            return self.group(group_id)

    async def target_action(self, target_id: str, action: str) -> JsonObject:
        """``enable``, ``disable`` or ``toggle`` one target; no other target is touched."""
        async with self._lock:
            relay = await self._relay()
            self.profile.target(target_id)
            operations = {
                "enable": relay.enable_target,
                "disable": relay.disable_target,
                "toggle": relay.toggle_target,
            }
            await operations[action](target_id)
            self._save(self.profile)  # a target switched off stays off after a restart
            return self.target(target_id)

    async def start_all(self) -> JsonObject:
        async with self._lock:
            await (await self._relay()).start_all()
            return self.status()

    async def stop_all(self) -> JsonObject:
        async with self._lock:
            await (await self._relay()).stop_all()
            self._save(self.profile)
            return self.status()

    # -- the profile ------------------------------------------------------------------------

    def profile_view(self) -> JsonObject:
        """The active profile's set-up: ingest, groups, targets; keys only as ``has_key``."""
        data = profile_to_dict(self.profile)
        data.pop("schema_version", None)
        data["ingest"] = self.ingest_view()
        for group_data, group in zip(data["groups"], self.profile.groups, strict=True):
            group_data["targets"] = [_target_view(t) for t in group.targets]
        return data

    def ingest_view(self) -> JsonObject:
        ingest = self.profile.ingest
        return {
            "kind": ingest.kind.value,
            "bind": ingest.bind,
            "port": ingest.port,
            "app": ingest.app,
            "url": ingest.url,
            "srt_latency_ms": ingest.srt_latency_ms,
            "obs_url": ingest.obs_url,
            "has_key": bool(ingest.key),
        }

    def group_config(self, group_id: str) -> JsonObject:
        view = self.profile_view()
        return next(g for g in view["groups"] if g["id"] == group_id)

    def target_config(self, target_id: str) -> JsonObject:
        group, target = self.profile.target(target_id)
        return {**_target_view(target), "group": group.id}

    async def edit_ingest(self, changes: Mapping[str, Any]) -> JsonObject:
        async with self._lock:
            await self._edit(editing.edit_ingest(self.profile, changes))
            return self.ingest_view()

    async def add_group(self, spec: Mapping[str, Any]) -> JsonObject:
        async with self._lock:
            edited = editing.add_group(self.profile, spec, self._caps())
            await self._edit(edited)
            return self.group_config(str(spec["id"]))

    async def edit_group(self, group_id: str, changes: Mapping[str, Any]) -> JsonObject:
        async with self._lock:
            edited = editing.edit_group(self.profile, group_id, changes, self._caps())
            await self._edit(edited)
            return self.group_config(str(changes.get("id", group_id)))

    async def remove_group(self, group_id: str) -> None:
        async with self._lock:
            group = self.profile.group(group_id)
            stored = [t.id for t in group.targets if t.key_ref == KEYRING_REF]
            await self._edit(editing.remove_group(self.profile, group_id))
            self._forget_keys(stored)

    async def add_target(self, group_id: str, spec: Mapping[str, Any]) -> JsonObject:
        async with self._lock:
            await self._edit(editing.add_target(self.profile, group_id, spec))
            return self.target_config(str(spec["id"]))

    async def edit_target(self, target_id: str, changes: Mapping[str, Any]) -> JsonObject:
        async with self._lock:
            _, target = self.profile.target(target_id)
            edited = editing.edit_target(self.profile, target_id, changes)
            new_id = str(changes.get("id", target_id))
            if new_id != target_id and target.key_ref == KEYRING_REF:
                self.agent.check_profile(edited)
                self._move_key(target_id, new_id)
            await self._edit(edited)
            return self.target_config(new_id)

    async def remove_target(self, target_id: str) -> None:
        async with self._lock:
            _, target = self.profile.target(target_id)
            await self._edit(editing.remove_target(self.profile, target_id))
            if target.key_ref == KEYRING_REF:
                self._forget_keys([target_id])

    async def set_key(self, target_id: str, key: object) -> JsonObject:
        """Store a target's stream key; the answer only says that one is set."""
        async with self._lock:
            _, target = self.profile.target(target_id)
            if not isinstance(key, str) or not key.strip():
                raise ValidationError(
                    "the stream key is missing or empty; nothing changed",
                    field="key",
                    subject=f"target '{target_id}'",
                    hint='Send {"key": "..."} with the key from the platform\'s dashboard',
                )
            key = key.strip()
            # Not printable: a control character (a NUL cannot even reach FFmpeg) or half a
            # UTF-16 pair, which no keyring or file can store.
            if len(key) > MAX_KEY_LENGTH or not key.isprintable() or " " in key:
                raise ValidationError(
                    "this does not look like a stream key (too long, or it has spaces or "
                    "invisible characters)",
                    field="key",
                    subject=f"target '{target_id}'",
                    hint="Copy only the key from the platform's dashboard",
                )
            edited = editing.edit_target(self.profile, target_id, {"key_ref": KEYRING_REF})
            self.agent.check_profile(edited)
            await asyncio.to_thread(self._secret_store().set, self.profile.name, target_id, key)
            if target.key_ref != KEYRING_REF:
                await self._edit(edited)
            return self.target_config(target_id)

    # -- profiles ---------------------------------------------------------------------------

    def profiles(self) -> JsonObject:
        return {"active": self.profile.name, "profiles": self.store.list()}

    async def activate(self, name: str) -> JsonObject:
        """Run profile ``name`` instead of the active one (only while nothing is live)."""
        async with self._lock:
            if name == self.profile.name:
                return self.profiles()
            known = await asyncio.to_thread(self.store.list)
            if name not in known:  # a name that cannot be a profile too: 404, like any id
                raise UnknownProfile(
                    f"there is no profile '{name}'",
                    hint=f"Known profiles: {', '.join(known) or 'none yet'}",
                )
            profile = await asyncio.to_thread(self.store.load, name)
            await self.agent.switch_profile(profile, self._keys_for(name))
            await asyncio.to_thread(self.store.use, name)
            log.info("profile '%s' is active", name)
            return self.profiles()

    async def create_profile(self, spec: Mapping[str, Any]) -> JsonObject:
        """Create profile ``name``: the default set-up, or a copy of profile ``from`` with its
        stream keys. The active profile stays active; the answer is the profile list."""
        async with self._lock:
            _only(spec, ("name", "from"))
            name = validate_slug(spec.get("name"), "profile name", field="name")
            source = spec.get("from")
            known = await asyncio.to_thread(self.store.list)
            if source is not None and (not isinstance(source, str) or source not in known):
                raise ValidationError(
                    f"there is no profile '{_shown(source)}' to copy",
                    field="from",
                    hint=f"Known profiles: {', '.join(known) or 'none yet'}",
                )
            if name in known:
                raise ProfileExists(
                    f"a profile named '{name}' already exists",
                    subject=f"profile '{name}'",
                    hint="Choose another name, or delete that profile first",
                )
            original = await asyncio.to_thread(self.store.load, source) if source else None
            # Read every key first: a store that refuses then leaves nothing half-copied.
            keys = await asyncio.to_thread(self._stored_keys, original) if original else {}
            await asyncio.to_thread(self.store.create, name, from_profile=original)
            try:
                await asyncio.to_thread(self._store_keys, name, keys)
            except CascadeError:
                await asyncio.to_thread(self.store.delete, name)
                raise
            log.info("profile '%s' created%s", name, f" from '{source}'" if source else "")
            return self.profiles()

    async def delete_profile(self, name: str) -> None:
        """Delete a profile that is not the active one, and its stored stream keys."""
        async with self._lock:
            if name == self.profile.name:
                raise Conflict(
                    "it is the active profile",
                    subject=f"profile '{name}'",
                    hint="Activate another profile first, then delete this one",
                )
            known = await asyncio.to_thread(self.store.list)
            if name not in known:
                raise UnknownProfile(
                    f"there is no profile '{name}'",
                    hint=f"Known profiles: {', '.join(known) or 'none yet'}",
                )
            profile = await asyncio.to_thread(self.store.load, name)
            await asyncio.to_thread(self.store.delete, name)
            stored = [t.id for g in profile.groups for t in g.targets if t.key_ref == KEYRING_REF]
            self._forget_keys(stored, profile=name)
            log.info("profile '%s' deleted", name)

    # -- the dashboard's views --------------------------------------------------------------

    def logs(self, source: str | None = None, limit: int = 500) -> JsonObject:
        """The last ``limit`` log lines (oldest first) whose source is ``source`` (or under it,
        for ``target:``), redacted, and every source seen."""
        book = self.agent.logbook
        return {
            "lines": [book.to_json(entry) for entry in book.lines(source, limit)],
            "sources": book.sources(),
        }

    async def encoders(self) -> JsonObject:
        """Every encoder Cascade can use, each usable or not with the reason, from the probe
        (waiting for a probe in progress)."""
        return encoders_view(self._probed(await self.agent.probed()))

    async def probe_encoders(self) -> JsonObject:
        """Probe FFmpeg again, ignoring the cache; answers like :meth:`encoders`."""
        return encoders_view(self._probed(await self.agent.reprobe()))

    def platforms(self) -> JsonObject:
        """The platform presets a set-up form offers."""
        return {"platforms": [_platform_view(platform) for platform in PRESETS]}

    async def settings_view(self) -> JsonObject:
        """The agent-wide settings, the FFmpeg in use, and launch at login."""
        settings = self.agent.settings
        ffmpeg = self.agent.ffmpeg
        return {
            "ffmpeg": settings.ffmpeg,
            "ffmpeg_in_use": (
                {"path": str(ffmpeg.path), "version": ffmpeg.version} if ffmpeg else None
            ),
            "notifications": settings.notifications,
            "api_port": settings.api_port,
            "api_bind": settings.api_bind,
            "autostart": await self._autostart_status(),
        }

    async def edit_settings(self, changes: Mapping[str, Any]) -> JsonObject:
        """Change ``ffmpeg`` (a full path, or null for the bundled FFmpeg), ``notifications``
        and ``autostart``; saved to settings.json. A new FFmpeg must run and be new enough,
        and is used at once (only while nothing is live)."""
        for name in READ_ONLY_SETTINGS:
            if name in changes:
                raise ValidationError(
                    f"{name} cannot be changed while the agent runs",
                    field=name,
                    hint=f"Set {name} in settings.json (or start with --port/--bind), then "
                    "restart Cascade",
                )
        _only(changes, EDITABLE_SETTINGS)
        notifications = _flag(changes, "notifications")
        autostart = _flag(changes, "autostart")
        async with self._lock:  # no group starts between the idle check and the switch
            binary: FFmpegBinary | None = None
            setting: str | None = None
            if "ffmpeg" in changes:
                setting = _ffmpeg_setting(changes["ffmpeg"])
                binary = await _checked_ffmpeg(setting)
                await self.agent.wait_started()
                running = self.agent.ffmpeg
                if (running is None or running.cache_key != binary.cache_key) and (
                    not self.agent.idle
                ):
                    raise Conflict(
                        "FFmpeg cannot be changed while a stream is live or a group is started "
                        "or armed",
                        subject="FFmpeg",
                        hint="Stop every group (cascade stop-all) and stop streaming in OBS first",
                    )
            if autostart is not None:
                await self._set_autostart(autostart)
            saved = await asyncio.to_thread(self.store.load_settings)
            if binary is not None:
                saved.ffmpeg = setting
            if notifications is not None:
                saved.notifications = notifications
            await asyncio.to_thread(self.store.save_settings, saved)
            if notifications is not None:
                self.agent.settings.notifications = notifications
            if binary is not None:
                self.agent.settings.ffmpeg = setting
                await self.agent.use_ffmpeg(binary)
            return await self.settings_view()

    # -- internals --------------------------------------------------------------------------

    def _probed(self, caps: Capabilities | None) -> Capabilities:
        """The capabilities, or the error that says why there are none."""
        if caps is not None:
            return caps
        if self.agent.ffmpeg is None:
            problem = self.agent.ffmpeg_error
            raise Conflict(
                "FFmpeg is not available, so no encoder can be listed",
                subject="FFmpeg",
                hint=problem.what if problem is not None else "Try again in a moment",
            )
        if self.agent.probe_error is not None:
            raise self.agent.probe_error
        raise Conflict("FFmpeg has not been probed yet", subject="FFmpeg", hint="Try again")

    def _autostart(self) -> Any:
        """This machine's launch-at-login switch; None where this build has none."""
        try:
            module = importlib.import_module("agent.platform.autostart")
        except ImportError:
            return None
        return module.for_this_machine(self.agent.config_dir)

    async def _autostart_status(self) -> JsonObject:
        try:
            autostart = self._autostart()
            if autostart is None:
                return {
                    "supported": False,
                    "enabled": False,
                    "detail": "launch at login is not available in this version of Cascade",
                }
            status = await asyncio.to_thread(autostart.status)
        except CascadeError as exc:
            return {"supported": False, "enabled": False, "detail": str(exc)}
        return {
            "supported": bool(status.supported),
            "enabled": bool(status.enabled),
            "detail": str(status.detail),
        }

    async def _set_autostart(self, enabled: bool) -> None:
        status = await self._autostart_status()
        if not status["supported"]:
            raise Conflict(
                "launch at login is not supported here",
                subject="launch at login",
                hint=status["detail"] or "Start Cascade from your system's own start-up settings",
            )
        autostart = self._autostart()
        await asyncio.to_thread(autostart.enable if enabled else autostart.disable)
        log.info("launch at login %s", "enabled" if enabled else "disabled")

    def _stored_keys(self, profile: Profile) -> dict[str, str]:
        """The stream keys a profile's targets keep in the secret store."""
        refs = [t.id for g in profile.groups for t in g.targets if t.key_ref == KEYRING_REF]
        if not refs:
            return {}
        store = self._secret_store()
        found = {target_id: store.get(profile.name, target_id) for target_id in refs}
        return {target_id: key for target_id, key in found.items() if key is not None}

    def _store_keys(self, profile_name: str, keys: Mapping[str, str]) -> None:
        if keys:
            store = self._secret_store()
            for target_id, key in keys.items():
                store.set(profile_name, target_id, key)

    async def _relay(self) -> Relay:
        await self.agent.wait_started()
        relay = self.agent.relay
        if relay is None:
            problem = self.agent.ffmpeg_error
            if problem is None:  # the API answers before the agent has found FFmpeg
                raise Conflict(
                    "the agent is still starting",
                    subject="agent",
                    hint="Try again in a moment",
                )
            raise Conflict(
                "nothing can start: FFmpeg is not available",
                subject="agent",
                hint=problem.hint if problem is not None and problem.hint else "Run cascade doctor",
            )
        return relay

    def _caps(self) -> Any:
        return self.agent.capabilities

    async def _edit(self, edited: Profile) -> None:
        """Save an edited profile and make the running relay follow it (checked first)."""
        await self.agent.wait_started()
        self.agent.check_profile(edited)
        self._save(edited)
        await self.agent.apply_profile(edited)

    def _save(self, profile: Profile) -> None:
        self.store.save(profile)

    def _secret_store(self) -> SecretStore:
        return self._secrets()

    def _move_key(self, old: str, new: str) -> None:
        store = self._secret_store()
        key = store.get(self.profile.name, old)
        if key is not None:
            store.set(self.profile.name, new, key)
            store.delete(self.profile.name, old)

    def _forget_keys(self, target_ids: list[str], *, profile: str | None = None) -> None:
        if not target_ids:
            return
        try:
            store = self._secret_store()
            for target_id in target_ids:
                store.delete(profile or self.profile.name, target_id)
        except CascadeError as exc:  # the profile no longer refers to it; say so and go on
            log.warning("a removed target's stream key could not be deleted: %s", exc)


def _target_view(target: Target) -> JsonObject:
    return {
        "id": target.id,
        "name": target.name,
        "platform": target.platform.value,
        "url": target.url,
        "enabled": target.enabled,
        "backup": target.backup,
        "has_key": bool(target.key_ref or target.key),
    }


def _offline_status(profile: Profile) -> JsonObject:
    """What status says when nothing can run (no FFmpeg): the set-up, all idle."""
    groups = [
        {
            "id": g.id,
            "name": g.label,
            "mode": g.mode.value,
            "state": "idle",
            "armed": g.armed,
            "live": False,
            "encoder": None,
            "targets": [
                TargetStats(
                    id=t.id,
                    group=g.id,
                    state="idle" if t.enabled else "disabled",
                    enabled=t.enabled,
                    destination=t.url or t.platform.value,
                ).to_dict()
                for t in g.targets
            ],
            "targets_live": 0,
            "bitrate_kbps": 0.0,
        }
        for g in profile.groups
    ]
    return {
        "ingest": {
            "kind": profile.ingest.kind.value,
            "url": profile.ingest.obs_url,
            "state": "stopped",
            "reason": "FFmpeg is not available",
            "stream": {},
            "bitrate_kbps": None,
        },
        "groups": groups,
        "totals": {
            "groups_live": 0,
            "targets": sum(len(g.targets) for g in profile.groups),
            "targets_live": 0,
            "targets_failing": 0,
            "bitrate_kbps": 0.0,
        },
    }


# -- the dashboard's views ------------------------------------------------------------------

_VENDORS = {
    "nvenc": "NVIDIA NVENC",
    "qsv": "Intel Quick Sync",
    "amf": "AMD AMF",
    "vaapi": "VAAPI",
    "videotoolbox": "Apple VideoToolbox",
}
_CODECS = {"h264": "H.264", "hevc": "HEVC", "av1": "AV1"}
_LABELS = {
    "libx264": "x264 (software)",
    "libx265": "x265 (software, HEVC)",
    "copy": "copy (the audio as it comes in)",
    "aac": "AAC",
    "libopus": "Opus",
    "libmp3lame": "MP3 (LAME)",
}
_URL_HINTS = {
    Platform.CUSTOM: "Your server's URL: rtmp://example.com/live, rtmps://… or "
    "srt://example.com:9000",
    Platform.RECORDING: "A folder such as ~/Videos/ or a file such as "
    "~/Videos/stream-{date}-{time}.mkv",
}


def encoder_label(name: str) -> str:
    """A person's name for an encoder: ``h264_nvenc`` → ``NVIDIA NVENC H.264``."""
    if name in _LABELS:
        return _LABELS[name]
    codec, _, vendor = name.partition("_")
    if vendor in _VENDORS and codec in _CODECS:
        return f"{_VENDORS[vendor]} {_CODECS[codec]}"
    return name


def encoders_view(caps: Capabilities) -> JsonObject:
    """Every video encoder the probe tests and every audio codec Cascade offers, each with
    whether it is usable here and, if not, why."""
    video = []
    for family in FAMILIES:
        if family.kind is not MediaKind.VIDEO:
            continue
        for name in family.encoders:
            verdict = caps.encoder_status(name)
            video.append(
                {
                    "name": name,
                    "usable": verdict.usable,
                    "reason": None if verdict.usable else verdict.reason,
                    "label": encoder_label(name),
                    "family": family.name,
                }
            )
    audio = []
    for name in AUDIO_CODECS:
        if name == "copy":
            usable, reason = True, ""
        elif name in caps.tests:
            usable, reason = caps.tests[name].usable, caps.tests[name].reason
        else:
            usable, reason = name in caps.encoders, NOT_IN_BUILD
        audio.append(
            {
                "name": name,
                "usable": usable,
                "reason": None if usable else reason,
                "label": encoder_label(name),
            }
        )
    return {
        "video": video,
        "audio": audio,
        "ffmpeg": {"path": str(caps.ffmpeg_path), "version": caps.version},
        "probed_at": iso_time(caps.probed_at),
    }


def _platform_view(platform: Platform) -> JsonObject:
    preset = PRESETS[platform]
    hint = _URL_HINTS.get(platform) or (
        f"Leave it empty for {preset.title}'s own server, or paste the server URL "
        f"{preset.title} shows you"
    )
    return {
        "id": platform.value,
        "label": preset.title,
        "default_url": preset.primary_url or None,
        "backup_url": preset.backup_url,
        "needs_key": preset.key_required,
        "schemes": sorted(preset.schemes),
        "url_hint": hint,
        "key_help": preset.key_help,
    }


def _shown(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _only(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    """Refuse a setting that is not one of ``allowed`` (a typo is refused, never ignored)."""
    for name in body:
        if name not in allowed:
            raise ValidationError(
                f"'{_shown(name)}' is not known here",
                field=str(name),
                hint=f"Known: {', '.join(allowed)}",
            )


def _flag(body: Mapping[str, Any], name: str) -> bool | None:
    """``body[name]`` as true/false, None when absent; 422 for anything else."""
    if name not in body:
        return None
    value = body[name]
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be true or false", field=name)
    return value


def _ffmpeg_setting(value: object) -> str | None:
    """The ffmpeg setting from a request: a full path, or None (blank) for the bundled one."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(
            "expected the full path of the ffmpeg program, or null for the bundled FFmpeg",
            field="ffmpeg",
        )
    text = value.strip()
    if not text:
        return None
    if len(text) > MAX_PATH_LENGTH or not text.isprintable():
        raise ValidationError(
            "this is not a path (too long, or it holds invisible characters)",
            field="ffmpeg",
            hint="Paste the full path of the ffmpeg program again",
        )
    if not os.path.isabs(os.path.expanduser(text)):
        raise ValidationError(
            "the FFmpeg path must be a full path",
            field="ffmpeg",
            hint="Give the full path of the ffmpeg program (e.g. /usr/bin/ffmpeg), or leave it "
            "blank for the bundled FFmpeg",
        )
    return text


async def _checked_ffmpeg(setting: str | None) -> FFmpegBinary:
    """The FFmpeg binary ``setting`` names; 422 (field ``ffmpeg``) if it is not a usable one."""
    try:
        return await asyncio.to_thread(find_ffmpeg, setting)
    except FFmpegError as exc:
        hint = (
            "Choose ffmpeg 5.0 or newer by its full path, or leave it blank for the bundled FFmpeg"
            if setting
            else exc.hint
        )
        raise ValidationError(exc.what, field="ffmpeg", subject="FFmpeg", hint=hint) from exc
