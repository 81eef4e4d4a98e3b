"""The profiles of one config directory, which one is active, and the agent-wide settings.

Layout::

    <config dir>/
      state.json              {"active": "default"}
      settings.json           agent-wide settings (agent.core.settings)
      profiles/
        default.json          one profile per file (agent.store.codec); the file name is its name
        default.json.bak      the previous version, kept by every save
        720p-test.json

Why a file per profile rather than one ``profiles.json``: a damaged file then costs one
profile, not all of them; saving one profile never rewrites the others; and a person can copy
one profile file to another machine. The price is that a rename touches two files: the new
one is written before the old one is removed, so a crash in between leaves both, never neither.

Every file goes through :mod:`agent.store.atomic`: writes are atomic and keep a backup; a
damaged file is kept aside and loading carries on from the backup or the defaults. Whatever
went wrong while loading is collected in :attr:`ProfileStore.warnings`, one sentence each, for
the agent to show.

Stream keys are not this module's business: :meth:`ProfileStore.save` never writes
``Target.key``, only ``Target.key_ref``; the key itself goes to :mod:`agent.store.secrets`.
"""

from __future__ import annotations

import builtins
import copy
import json
import logging
from pathlib import Path

from agent.core.model import Group, IngestSettings, Profile
from agent.core.settings import Settings, load_settings, save_settings
from agent.core.validate import SLUG, validate_slug
from agent.store.atomic import (
    BACKUP_SUFFIX,
    MAX_BYTES,
    StoreError,
    backup_path,
    delete_json,
    read_json,
    write_json_atomic,
)
from agent.store.codec import (
    SCHEMA_KEY,
    SCHEMA_VERSION,
    NewerSchema,
    check_profile,
    profile_from_dict,
    profile_to_dict,
)

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PROFILE",
    "ProfileExists",
    "ProfileStore",
    "UnknownProfile",
    "default_profile",
]

DEFAULT_PROFILE = "default"
PROFILES_DIR = "profiles"
STATE_FILE = "state.json"
PROFILE_SUFFIX = ".json"


class UnknownProfile(StoreError):
    """Raised when a profile name does not exist in this config directory."""


class ProfileExists(StoreError):
    """Raised when creating, renaming or duplicating onto a name that is already taken."""


def default_profile(name: str = DEFAULT_PROFILE) -> Profile:
    """A first run's profile: OBS sends to rtmp://127.0.0.1:1935/live, one passthrough group
    ``main`` with no targets yet."""
    return Profile(name=name, ingest=IngestSettings(), groups=[Group(id="main")])


def _state_from_dict(data: dict[str, object]) -> str:
    active = data.get("active")
    if not isinstance(active, str) or not _is_slug(active):
        raise ValueError(f"active: expected a profile name, got {json.dumps(active)}")
    return active


class ProfileStore:
    """The profiles in ``config_dir`` (see the module docstring for the layout).

    Creating the store touches no file. Names are slugs, like group and target ids. Methods
    raise :class:`UnknownProfile`, :class:`ProfileExists`,
    :class:`~agent.core.validate.ValidationError` (a bad name or profile),
    :class:`~agent.store.codec.NewerSchema` (a file from a newer Cascade, left untouched) or
    :class:`~agent.store.atomic.StoreError` (the disk refused; nothing saved is lost).
    """

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        self.profiles_dir = config_dir / PROFILES_DIR
        self.state_path = config_dir / STATE_FILE
        # What went wrong while loading, one sentence each, oldest first, for the agent to show.
        self.warnings: list[str] = []
        self._active: str | None = None

    # --- names ----------------------------------------------------------------------------

    def path_of(self, name: str) -> Path:
        """The file of profile ``name`` (which need not exist)."""
        return self.profiles_dir / f"{name}{PROFILE_SUFFIX}"

    def exists(self, name: str) -> bool:
        """Whether profile ``name`` has a file, or at least the backup of one."""
        path = self.path_of(name)
        return path.exists() or backup_path(path).exists()

    def list(self) -> builtins.list[str]:
        """The profile names, sorted. A profile whose file is missing but whose backup is
        there is listed too: loading it starts from the backup."""
        if not self.profiles_dir.is_dir():
            return []
        names: set[str] = set()
        for suffix in (PROFILE_SUFFIX, PROFILE_SUFFIX + BACKUP_SUFFIX):
            for path in self.profiles_dir.glob(f"*{suffix}"):
                name = path.name[: -len(suffix)]
                if _is_slug(name) and path.is_file():
                    names.add(name)
        return sorted(names)

    @property
    def active_name(self) -> str:
        """The active profile's name, from ``state.json``; if that names no profile (or is
        missing or damaged), ``default`` if it exists, else the first profile."""
        if self._active is None:
            self._active = self._read_active()
        return self._active

    def _read_active(self) -> str:
        result = read_json(self.state_path, _state_from_dict)
        self._warn(result.message)
        names = self.list()
        if result.value is not None and result.value in names:
            return result.value
        fallback = DEFAULT_PROFILE if DEFAULT_PROFILE in names or not names else names[0]
        if result.value is not None:
            self._warn(
                f"The active profile '{result.value}' was not found; Cascade uses "
                f"'{fallback}' instead."
            )
        return fallback

    def _write_active(self, name: str) -> None:
        write_json_atomic(self.state_path, {"active": name})
        self._active = name

    # --- loading --------------------------------------------------------------------------

    def load(self, name: str) -> Profile:
        """Profile ``name``: its file, else its backup, else a default profile of that name
        (each fallback is explained in :attr:`warnings`).

        Raises :class:`UnknownProfile` when there is no such profile and
        :class:`~agent.store.codec.NewerSchema` when a newer Cascade saved it.
        """
        self._check_name(name)
        if not self.exists(name):
            raise self._unknown(name)
        path = self.path_of(name)
        notes: builtins.list[str] = []

        def decode(data: dict[str, object]) -> Profile:
            notes.clear()  # keep only the notes about the version that is used
            return profile_from_dict(data, warnings=notes)

        try:
            result = read_json(path, decode, label=f"{PROFILES_DIR}/{path.name}")
        except NewerSchema as exc:
            raise NewerSchema(exc.found, subject=f"profile '{name}' ({path})") from None
        self._warn(result.message)
        if result.value is None:
            return default_profile(name)
        for note in notes:
            self._warn(f"Profile '{name}': {note}.")
        profile = result.value
        profile.name = name  # the file's name is the profile's name
        return profile

    def load_active(self) -> Profile:
        """The active profile. On a first run (no profile at all) a default one is created,
        saved and made active."""
        if not self.list():
            profile = default_profile()
            self.save(profile)
            self._write_active(profile.name)
            return profile
        return self.load(self.active_name)

    # --- changing -------------------------------------------------------------------------

    def save(self, profile: Profile) -> None:
        """Write ``profile`` to the file of its name (atomically, keeping a backup).

        The profile is validated first: a profile that would not load back is refused with a
        :class:`~agent.core.validate.ValidationError` and nothing is written. A file saved by
        a newer Cascade is never overwritten (:class:`~agent.store.codec.NewerSchema`).
        """
        self._check_name(profile.name)
        check_profile(profile)
        path = self.path_of(profile.name)
        found = _schema_on_disk(path)
        if found is not None and found > SCHEMA_VERSION:
            raise NewerSchema(found, subject=f"profile '{profile.name}' ({path})")
        for group in profile.groups:
            for target in group.targets:
                if target.key and not target.key_ref:
                    # The key is never written here; without a reference it lasts until exit.
                    log.warning(
                        "target '%s' of profile '%s' has a stream key that is stored nowhere; "
                        "store it with agent.store.secrets to keep it after a restart",
                        target.id,
                        profile.name,
                    )
        write_json_atomic(path, profile_to_dict(profile))

    def create(self, name: str, *, from_profile: Profile | None = None) -> Profile:
        """Create and save profile ``name``: a copy of ``from_profile``, or the default one."""
        self._check_name(name)
        if self.exists(name):
            raise self._exists(name)
        profile = copy.deepcopy(from_profile) if from_profile is not None else default_profile()
        profile.name = name
        self.save(profile)
        return profile

    def duplicate(self, name: str, new: str) -> Profile:
        """Save a copy of profile ``name`` as ``new`` and return it."""
        self._check_name(new)
        if self.exists(new):
            raise self._exists(new)
        return self.create(new, from_profile=self.load(name))

    def rename(self, old: str, new: str) -> Profile:
        """Rename profile ``old`` to ``new``; the active profile stays active under its new
        name. The new file is written before the old one is removed."""
        self._check_name(new)
        profile = self.load(old)
        if new == old:
            return profile
        if self.exists(new):
            raise self._exists(new)
        profile.name = new
        self.save(profile)
        if self.active_name == old:
            self._write_active(new)
        delete_json(self.path_of(old))
        return profile

    def delete(self, name: str) -> None:
        """Delete profile ``name`` and its backup.

        The last profile cannot be deleted. Deleting the active one makes another active
        first (``default`` if it exists, else the first by name).
        """
        self._check_name(name)
        if not self.exists(name):
            raise self._unknown(name)
        others = [other for other in self.list() if other != name]
        if not others:
            raise StoreError(
                f"'{name}' is the only profile and cannot be deleted",
                subject=f"profile '{name}'",
                hint="Create another profile first ('cascade profile create NAME')",
            )
        if self.active_name == name:
            self._write_active(DEFAULT_PROFILE if DEFAULT_PROFILE in others else others[0])
        delete_json(self.path_of(name))

    def use(self, name: str) -> Profile:
        """Make profile ``name`` the active one and return it (it must load)."""
        profile = self.load(name)
        self._write_active(name)
        return profile

    # --- settings -------------------------------------------------------------------------

    def load_settings(self) -> Settings:
        """The agent-wide settings; what went wrong reading them goes to :attr:`warnings`."""
        notes: builtins.list[str] = []
        settings = load_settings(self.config_dir, warnings=notes)
        for note in notes:
            self._warn(note)
        return settings

    def save_settings(self, settings: Settings) -> None:
        """Write the agent-wide settings atomically, keeping a backup."""
        save_settings(self.config_dir, settings)

    # --- helpers --------------------------------------------------------------------------

    def _warn(self, message: str | None) -> None:
        if message and message not in self.warnings:
            log.warning("%s", message)
            self.warnings.append(message)

    @staticmethod
    def _check_name(name: str) -> None:
        validate_slug(name, "profile name", field="name")

    def _unknown(self, name: str) -> UnknownProfile:
        known = ", ".join(self.list()) or "none yet"
        return UnknownProfile(
            f"there is no profile '{name}'",
            hint=f"Known profiles: {known}",
        )

    @staticmethod
    def _exists(name: str) -> ProfileExists:
        return ProfileExists(
            f"a profile named '{name}' already exists",
            hint="Choose another name, or delete that profile first",
        )


def _is_slug(name: str) -> bool:
    return SLUG.match(name) is not None


def _schema_on_disk(path: Path) -> int | None:
    """The schema version of the file at ``path``, if it is a readable profile file."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_BYTES + 1)
        data = json.loads(raw.decode("utf-8-sig"))
    except (OSError, ValueError, RecursionError):
        return None  # missing or damaged: write_json_atomic keeps a damaged file aside
    version = data.get(SCHEMA_KEY) if isinstance(data, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else None
