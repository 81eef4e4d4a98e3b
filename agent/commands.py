"""Command-line editing of profiles, groups, targets and stream keys.

Thin handlers over :mod:`agent.store`: each command takes the config directory's lock (so it
never races a running agent), loads the profile, applies one edit from
:mod:`agent.store.editing` and saves it. Stream keys are read without echo and go to the
secret store; they are never printed.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.core.model import Profile
from agent.errors import CascadeError
from agent.media.capabilities import Capabilities
from agent.platform.single_instance import AlreadyRunning, InstanceLock
from agent.store import editing
from agent.store.bundle import export_bundle, import_bundle
from agent.store.codec import KEYRING_REF, env_key_ref, profile_from_dict, profile_to_dict
from agent.store.profiles import ProfileStore
from agent.store.secrets import SecretStore, choose_store

Out = Callable[[str], None]


def add_parsers(sub: Any) -> None:
    """Register ``profile``, ``group``, ``target`` and ``key`` on the CLI's subparsers."""
    profile = sub.add_parser("profile", help="list, create, switch, rename, delete, export, import")
    psub = profile.add_subparsers(dest="action", metavar="ACTION", required=True)
    psub.add_parser("list", help="the profiles (* = active)")
    create = psub.add_parser("create", help="a new profile")
    create.add_argument("name")
    create.add_argument("--from", dest="source", help="copy this profile's set-up")
    psub.add_parser("use", help="make a profile active").add_argument("name")
    rename = psub.add_parser("rename", help="rename a profile")
    rename.add_argument("old")
    rename.add_argument("new")
    psub.add_parser("delete", help="delete a profile").add_argument("name")
    export = psub.add_parser("export", help="an encrypted bundle of a profile and its keys")
    export.add_argument("file", type=Path)
    export.add_argument("--profile", help="which profile (default: the active one)")
    export.add_argument("--no-keys", action="store_true", help="the layout only, no keys")
    export.add_argument("--password-stdin", action="store_true")
    imp = psub.add_parser("import", help="restore a bundle into this machine's keyring")
    imp.add_argument("file", type=Path)
    imp.add_argument("--as", dest="name", help="profile name (default: the bundle's)")
    imp.add_argument("--password-stdin", action="store_true")

    group = sub.add_parser("group", help="add, edit or remove an output group")
    gsub = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action in ("add", "edit"):
        parser = gsub.add_parser(action, help=f"{action} a group")
        parser.add_argument("id")
        parser.add_argument("--profile")
        parser.add_argument("--name")
        parser.add_argument("--mode", choices=["passthrough", "reencode"])
        parser.add_argument("--codec", help="video encoder, e.g. libx264 or h264_nvenc")
        parser.add_argument("--width", type=int)
        parser.add_argument("--height", type=int)
        parser.add_argument("--fps", type=float)
        parser.add_argument("--bitrate", type=int, help="video kbit/s")
        parser.add_argument("--keyframe-interval", type=float, help="seconds")
        parser.add_argument("--preset", help="x264 preset name, mapped per encoder")
        parser.add_argument("--audio-codec", help="copy, aac, libopus or libmp3lame")
        parser.add_argument("--audio-bitrate", type=int, help="audio kbit/s")
    remove = gsub.add_parser("remove", help="remove a group and its targets")
    remove.add_argument("id")
    remove.add_argument("--profile")

    target = sub.add_parser("target", help="add, edit or remove a destination")
    tsub = target.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action in ("add", "edit"):
        parser = tsub.add_parser(action, help=f"{action} a target")
        parser.add_argument("id")
        parser.add_argument("--profile")
        if action == "add":
            parser.add_argument("--group", required=True, help="the group it belongs to")
        parser.add_argument(
            "--platform",
            choices=["youtube", "twitch", "kick", "facebook", "custom", "recording"],
        )
        parser.add_argument("--url", help="server URL (custom), or a file/folder (recording)")
        parser.add_argument("--name")
        parser.add_argument("--backup", action="store_true", default=None)
        parser.add_argument("--enabled", dest="enabled", action="store_true", default=None)
        parser.add_argument("--disabled", dest="enabled", action="store_false")
        parser.add_argument("--key-env", metavar="VAR", help="read the key from $VAR at start")
    tremove = tsub.add_parser("remove", help="remove a target")
    tremove.add_argument("id")
    tremove.add_argument("--profile")

    key = sub.add_parser("key", help="set or clear a target's stream key")
    ksub = key.add_subparsers(dest="action", metavar="ACTION", required=True)
    kset = ksub.add_parser("set", help="prompt for the key (no echo) or read it from stdin")
    kset.add_argument("target")
    kset.add_argument("--profile")
    kclear = ksub.add_parser("clear", help="forget a target's stored key")
    kclear.add_argument("target")
    kclear.add_argument("--profile")


def run(args: argparse.Namespace, cfg: Path, out: Out = print) -> int:
    """Carry out one ``profile``/``group``/``target``/``key`` command."""
    with _exclusive(cfg):
        store = ProfileStore(cfg)
        handler = _HANDLERS[(args.command, args.action)]
        handler(args, cfg, store, out)
    return 0


@contextmanager
def _exclusive(cfg: Path) -> Iterator[None]:
    lock = InstanceLock(cfg)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        raise CascadeError(
            "the agent is running and owns this configuration",
            subject="command line",
            hint=f"{exc.what}. Stop it, make the change, and start it again",
        ) from exc
    try:
        yield
    finally:
        lock.release()


# -- profiles -------------------------------------------------------------------------------


def _load(store: ProfileStore, name: str | None) -> Profile:
    """The named profile, or the active one (created with the defaults on a first run)."""
    return store.load(name) if name else store.load_active()


def _profile_list(args: argparse.Namespace, cfg: Path, store: ProfileStore, out: Out) -> None:
    store.load_active()  # a first run has the default profile
    active = store.active_name
    for name in store.list():
        out(f"{'*' if name == active else ' '} {name}")


def _profile_create(args: argparse.Namespace, cfg: Path, store: ProfileStore, out: Out) -> None:
    store.load_active()
    if args.source:
        store.duplicate(args.source, args.name)
    else:
        store.create(args.name)
    out(f"created profile '{args.name}'")


def _profile_use(args: argparse.Namespace, cfg: Path, store: ProfileStore, out: Out) -> None:
    store.use(args.name)
    out(f"profile '{args.name}' is now active")


def _profile_rename(args: argparse.Namespace, cfg: Path, store: ProfileStore, out: Out) -> None:
    profile = store.load(args.old)
    secrets = _stored_keys(cfg, profile)
    store.rename(args.old, args.new)
    if secrets:
        vault = _secret_store(cfg)
        for target_id, key in secrets.items():
            vault.set(args.new, target_id, key)
            vault.delete(args.old, target_id)
    out(f"renamed profile '{args.old}' to '{args.new}'")


def _profile_delete(args: argparse.Namespace, cfg: Path, store: ProfileStore, out: Out) -> None:
    profile = store.load(args.name)
    stored = [t.id for g in profile.groups for t in g.targets if t.key_ref == KEYRING_REF]
    store.delete(args.name)
    if stored:
        vault = _secret_store(cfg)
        for target_id in stored:
            vault.delete(args.name, target_id)
    out(f"deleted profile '{args.name}'")


def _profile_export(args: argparse.Namespace, cfg: Path, store: ProfileStore, out: Out) -> None:
    profile = _load(store, args.profile)
    keys = None if args.no_keys else _stored_keys(cfg, profile)
    password = _password(args.password_stdin, confirm=True)
    export_bundle(profile_to_dict(profile), keys, password, args.file)
    what = "without keys" if keys is None else f"with {len(keys)} stream key(s)"
    out(f"exported profile '{profile.name}' {what} to {args.file}")


def _profile_import(args: argparse.Namespace, cfg: Path, store: ProfileStore, out: Out) -> None:
    password = _password(args.password_stdin, confirm=False)
    data, keys = import_bundle(args.file, password)  # nothing is written before this passes
    profile = profile_from_dict(data)
    profile.name = args.name or profile.name
    if store.exists(profile.name):
        raise CascadeError(
            f"a profile named '{profile.name}' exists already",
            subject=str(args.file),
            hint="Import it under another name with --as NAME",
        )
    vault = _secret_store(cfg) if keys else None
    for group in profile.groups:
        for target in group.targets:
            if keys and target.id in keys:
                target.key_ref = KEYRING_REF
            elif target.key_ref == KEYRING_REF:
                target.key_ref = None  # exported without keys: set them again here
    store.create(profile.name, from_profile=profile)
    if vault is not None and keys:
        for target_id, key in keys.items():
            vault.set(profile.name, target_id, key)
    out(f"imported profile '{profile.name}'" + (f" with {len(keys)} key(s)" if keys else ""))


# -- groups and targets ---------------------------------------------------------------------


def _group_spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for field, value in (("name", args.name), ("mode", args.mode)):
        if value is not None:
            spec[field] = value
    video = {
        field: value
        for field, value in (
            ("codec", args.codec),
            ("width", args.width),
            ("height", args.height),
            ("fps", args.fps),
            ("bitrate_kbps", args.bitrate),
            ("keyframe_interval_s", args.keyframe_interval),
            ("preset", args.preset),
        )
        if value is not None
    }
    audio = {
        field: value
        for field, value in (("codec", args.audio_codec), ("bitrate_kbps", args.audio_bitrate))
        if value is not None
    }
    if video:
        spec["video"] = video
    if audio:
        spec["audio"] = audio
    return spec


def _target_spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for field in ("platform", "url", "name", "backup", "enabled"):
        value = getattr(args, field)
        if value is not None:
            spec[field] = value
    if args.key_env:
        spec["key_ref"] = env_key_ref(args.key_env)
    return spec


def _edit(
    args: argparse.Namespace, store: ProfileStore, change: Callable[[Profile], Profile]
) -> Profile:
    profile = _load(store, args.profile)
    edited = change(profile)
    store.save(edited)
    return edited


def _group_add(args: argparse.Namespace, cfg: Path, store: ProfileStore, out: Out) -> None:
    spec = {"id": args.id, **_group_spec(args)}
    _edit(args, store, lambda p: editing.add_group(p, spec, _caps(cfg)))
    out(f"added group '{args.id}'")


def _group_edit(args: argparse.Namespace, cfg: Path, store: ProfileStore, out: Out) -> None:
    _edit(args, store, lambda p: editing.edit_group(p, args.id, _group_spec(args), _caps(cfg)))
    out(f"changed group '{args.id}'")


def _group_remove(args: argparse.Namespace, cfg: Path, store: ProfileStore, out: Out) -> None:
    _edit(args, store, lambda p: editing.remove_group(p, args.id))
    out(f"removed group '{args.id}'")


def _target_add(args: argparse.Namespace, cfg: Path, store: ProfileStore, out: Out) -> None:
    spec = {"id": args.id, **_target_spec(args)}
    _edit(args, store, lambda p: editing.add_target(p, args.group, spec))
    out(f"added target '{args.id}' to group '{args.group}'")


def _target_edit(args: argparse.Namespace, cfg: Path, store: ProfileStore, out: Out) -> None:
    _edit(args, store, lambda p: editing.edit_target(p, args.id, _target_spec(args)))
    out(f"changed target '{args.id}'")


def _target_remove(args: argparse.Namespace, cfg: Path, store: ProfileStore, out: Out) -> None:
    profile = _edit(args, store, lambda p: editing.remove_target(p, args.id))
    _secret_store_if_any(cfg, lambda s: s.delete(profile.name, args.id))
    out(f"removed target '{args.id}'")


# -- keys -----------------------------------------------------------------------------------


def _key_set(args: argparse.Namespace, cfg: Path, store: ProfileStore, out: Out) -> None:
    profile = _load(store, args.profile)
    profile.target(args.target)  # UnknownId before asking for anything
    if sys.stdin.isatty():
        key = getpass.getpass(f"Stream key for target '{args.target}' (not shown): ")
    else:
        key = sys.stdin.readline()
    key = key.strip()
    if not key:
        raise CascadeError("no key was given; nothing changed", subject=f"target '{args.target}'")
    _secret_store(cfg).set(profile.name, args.target, key)
    store.save(editing.edit_target(profile, args.target, {"key_ref": KEYRING_REF}))
    out(f"stored the stream key of target '{args.target}'")


def _key_clear(args: argparse.Namespace, cfg: Path, store: ProfileStore, out: Out) -> None:
    profile = _load(store, args.profile)
    profile.target(args.target)
    _secret_store_if_any(cfg, lambda s: s.delete(profile.name, args.target))
    store.save(editing.edit_target(profile, args.target, {"key_ref": None}))
    out(f"cleared the stream key of target '{args.target}'")


# -- helpers --------------------------------------------------------------------------------


def _secret_store(cfg: Path) -> SecretStore:
    def ask() -> str:
        if not sys.stdin.isatty():
            return ""
        return getpass.getpass("Passphrase of Cascade's key vault: ")

    return choose_store(cfg, passphrase=ask)


def _secret_store_if_any(cfg: Path, action: Callable[[SecretStore], object]) -> None:
    """Run ``action`` on the secret store if one can be opened (clearing needs none)."""
    try:
        store = _secret_store(cfg)
    except CascadeError:
        return
    action(store)


def _stored_keys(cfg: Path, profile: Profile) -> dict[str, str]:
    stored = [t.id for g in profile.groups for t in g.targets if t.key_ref == KEYRING_REF]
    if not stored:
        return {}
    vault = _secret_store(cfg)
    keys = {}
    for target_id in stored:
        key = vault.get(profile.name, target_id)
        if key is not None:
            keys[target_id] = key
    return keys


def _password(from_stdin: bool, *, confirm: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("Bundle password: ")
    if confirm and getpass.getpass("Same password again: ") != password:
        raise CascadeError("the two passwords differ; nothing was written")
    return password


def _caps(cfg: Path) -> Capabilities | None:
    from agent.core.settings import load_settings
    from agent.media.capabilities import probe_capabilities
    from agent.media.ffmpeg import find_ffmpeg
    from agent.paths import cache_dir

    try:
        binary = find_ffmpeg(load_settings(cfg).ffmpeg)
    except CascadeError:
        return None  # encoders are checked again when the group starts
    return probe_capabilities(binary, cache_dir=cache_dir(cfg))


_HANDLERS: dict[tuple[str, str], Callable[[argparse.Namespace, Path, ProfileStore, Out], None]] = {
    ("profile", "list"): _profile_list,
    ("profile", "create"): _profile_create,
    ("profile", "use"): _profile_use,
    ("profile", "rename"): _profile_rename,
    ("profile", "delete"): _profile_delete,
    ("profile", "export"): _profile_export,
    ("profile", "import"): _profile_import,
    ("group", "add"): _group_add,
    ("group", "edit"): _group_edit,
    ("group", "remove"): _group_remove,
    ("target", "add"): _target_add,
    ("target", "edit"): _target_edit,
    ("target", "remove"): _target_remove,
    ("key", "set"): _key_set,
    ("key", "clear"): _key_clear,
}
