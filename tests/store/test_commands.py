"""The command line's profile, group, target and key commands, against the real keyring."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from agent.cli import build_parser
from agent.commands import run
from agent.errors import CascadeError
from agent.store.profiles import ProfileStore
from agent.store.secrets import KeyringStore
from tests.keyring_session import SecretServiceSession

KEY = "live_SECRET_cmd+/=?&% 42"


def cascade(cfg: Path, *argv: str, stdin: str = "", monkeypatch: pytest.MonkeyPatch) -> list[str]:
    lines: list[str] = []
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    run(build_parser().parse_args(list(argv)), cfg, lines.append)
    return lines


def every_file_text(folder: Path) -> str:
    return "".join(p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file())


def test_a_key_set_from_the_cli_lives_in_the_keyring_not_in_any_file(
    tmp_path: Path, secret_service: SecretServiceSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "cfg"
    cascade(cfg, "target", "add", "twitch", "--group", "main", "--platform", "twitch",
            monkeypatch=monkeypatch)  # fmt: skip
    out = cascade(cfg, "key", "set", "twitch", stdin=KEY + "\n", monkeypatch=monkeypatch)
    assert out == ["stored the stream key of target 'twitch'"]
    assert KeyringStore().get("default", "twitch") == KEY
    _, target = ProfileStore(cfg).load_active().target("twitch")
    assert target.key_ref == "keyring" and target.key is None
    assert KEY not in every_file_text(cfg)

    cascade(cfg, "key", "clear", "twitch", monkeypatch=monkeypatch)
    assert KeyringStore().get("default", "twitch") is None
    assert ProfileStore(cfg).load_active().target("twitch")[1].key_ref is None


def test_export_then_import_restores_the_profile_and_its_keys(
    tmp_path: Path, secret_service: SecretServiceSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "cfg"
    bundle = tmp_path / "show.cascade"
    cascade(cfg, "target", "add", "yt", "--group", "main", "--platform", "youtube",
            monkeypatch=monkeypatch)  # fmt: skip
    cascade(cfg, "key", "set", "yt", stdin=KEY, monkeypatch=monkeypatch)
    cascade(cfg, "profile", "export", str(bundle), "--password-stdin",
            stdin="correct horse battery\n", monkeypatch=monkeypatch)  # fmt: skip
    assert KEY.encode() not in bundle.read_bytes()

    with pytest.raises(CascadeError, match="password"):
        cascade(cfg, "profile", "import", str(bundle), "--as", "copy", "--password-stdin",
                stdin="wrong password\n", monkeypatch=monkeypatch)  # fmt: skip
    assert ProfileStore(cfg).list() == ["default"]

    out = cascade(cfg, "profile", "import", str(bundle), "--as", "copy", "--password-stdin",
                  stdin="correct horse battery\n", monkeypatch=monkeypatch)  # fmt: skip
    assert out == ["imported profile 'copy' with 1 key(s)"]
    assert KeyringStore().get("copy", "yt") == KEY
    assert ProfileStore(cfg).load("copy").target("yt")[1].key_ref == "keyring"
    assert KEY not in every_file_text(cfg)


def test_a_bad_edit_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "cfg"
    cascade(cfg, "group", "add", "720p", "--mode", "reencode", "--width", "1280",
            "--height", "720", monkeypatch=monkeypatch)  # fmt: skip
    before = (cfg / "profiles" / "default.json").read_bytes()
    for argv in (
        ("group", "add", "720p"),  # duplicate id
        ("group", "edit", "720p", "--codec", "x264"),  # unknown encoder
        ("target", "add", "tw", "--group", "nope"),  # unknown group
        ("target", "add", "tw", "--group", "main", "--url", "rtmp//x"),  # malformed URL
    ):
        with pytest.raises(CascadeError):
            cascade(cfg, *argv, monkeypatch=monkeypatch)
    assert (cfg / "profiles" / "default.json").read_bytes() == before
