"""The operations every client calls: the API, the tray and (through the API) the CLI.

:class:`Control` joins the running :class:`~agent.core.agent.Agent` and the stored profiles.
Each operation is one method that checks, changes and saves in one step and answers with the
resulting state, so a Stream Deck button can show it. Edits go through
:mod:`agent.store.editing`, so they are refused for the same reasons, with the same messages,
as on the command line; the running relay then follows the saved profile, touching only what
changed (see :meth:`agent.core.relay.Relay.check`). Operations run one at a time.

Errors are :class:`~agent.errors.CascadeError` subclasses: ``UnknownId`` and
``UnknownProfile`` (no such thing), ``ValidationError`` (a bad value; ``field`` says which),
``Conflict`` (not in this state; nothing changed) and the store's errors.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from agent import __version__
from agent.core.agent import Agent
from agent.core.egress import TargetStats
from agent.core.events import ShowRequested
from agent.core.model import Profile, Target
from agent.core.push import KeySource
from agent.core.relay import Relay
from agent.core.validate import ValidationError
from agent.errors import CascadeError, Conflict
from agent.store import editing
from agent.store.codec import KEYRING_REF, profile_to_dict
from agent.store.profiles import ProfileStore, UnknownProfile
from agent.store.secrets import SecretStore

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]

#: The largest stream key accepted: platform keys are well under 200 characters.
MAX_KEY_LENGTH = 1024


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

    # -- internals --------------------------------------------------------------------------

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

    def _forget_keys(self, target_ids: list[str]) -> None:
        try:
            store = self._secret_store()
            for target_id in target_ids:
                store.delete(self.profile.name, target_id)
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
