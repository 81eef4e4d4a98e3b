"""Crash-safe JSON files: a write interrupted anywhere leaves the old or the new version, never
neither; a damaged file is kept aside, never overwritten, and reading carries on from the
backup or the defaults with a sentence that says what happened."""

from __future__ import annotations

import errno
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agent.store import atomic
from agent.store.atomic import (
    ReadResult,
    Source,
    StoreError,
    backup_path,
    delete_json,
    read_json,
    write_json_atomic,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2024, 11, 21, 14, 5, 12)

OLD = {"version": "old", "items": list(range(50))}
NEW = {"version": "new", "items": list(range(60))}


def decode_counter(data: dict[str, Any]) -> int:
    """A caller's decoder: the file must hold {"n": <whole number>}."""
    value = data.get("n")
    if not isinstance(value, int):
        raise ValueError(f"n: expected a whole number, got {json.dumps(value)}")
    return value


def leftovers(folder: Path) -> list[str]:
    """Temporary files a write left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def kept_aside(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if ".corrupt-" in p.name)


class TestWriteAndRead:
    def test_what_is_written_reads_back_from_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "state.json"
        write_json_atomic(path, OLD)

        result = read_json(path)

        assert result == ReadResult(OLD, Source.FILE)

    def test_each_write_keeps_the_previous_version_as_the_backup(self, tmp_path: Path) -> None:
        path = tmp_path / "state.json"
        write_json_atomic(path, {"n": 1})
        assert not backup_path(path).exists()  # nothing to keep on the first write

        write_json_atomic(path, {"n": 2})
        write_json_atomic(path, {"n": 3})

        assert json.loads(path.read_text()) == {"n": 3}
        assert json.loads(backup_path(path).read_text()) == {"n": 2}
        assert leftovers(tmp_path) == []

    def test_the_backup_is_the_previous_file_itself_not_a_rewrite(self, tmp_path: Path) -> None:
        # A hard link: the previous version's bytes are never copied, so never torn.
        path = tmp_path / "state.json"
        write_json_atomic(path, OLD)
        previous_inode = path.stat().st_ino

        write_json_atomic(path, NEW)

        assert backup_path(path).stat().st_ino == previous_inode
        assert path.stat().st_ino != previous_inode

    def test_without_hard_links_the_backup_is_a_copy(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "state.json"
        write_json_atomic(path, OLD)

        def no_links(*_: object) -> None:
            raise OSError(errno.EPERM, "Operation not permitted")  # FAT, some shares

        monkeypatch.setattr(os, "link", no_links)
        write_json_atomic(path, NEW)

        assert json.loads(backup_path(path).read_text()) == OLD
        assert read_json(path).value == NEW
        assert leftovers(tmp_path) == []

    def test_the_folder_is_created(self, tmp_path: Path) -> None:
        path = tmp_path / "a" / "b" / "state.json"
        write_json_atomic(path, OLD)
        assert read_json(path).value == OLD

    def test_files_are_private_to_their_owner(self, tmp_path: Path) -> None:
        if os.name == "nt":
            pytest.skip("POSIX permission bits")
        path = tmp_path / "state.json"
        write_json_atomic(path, OLD)
        assert path.stat().st_mode & 0o077 == 0

    def test_text_that_is_not_ascii_survives(self, tmp_path: Path) -> None:
        path = tmp_path / "state.json"
        write_json_atomic(path, {"name": "Überstream ✓ 配信"})
        assert read_json(path).value == {"name": "Überstream ✓ 配信"}

    def test_a_byte_order_mark_from_a_text_editor_is_not_damage(self, tmp_path: Path) -> None:
        path = tmp_path / "state.json"
        path.write_bytes(b'\xef\xbb\xbf{"n": 1}')
        assert read_json(path) == ReadResult({"n": 1}, Source.FILE)

    def test_deleting_removes_the_file_and_its_backup(self, tmp_path: Path) -> None:
        path = tmp_path / "state.json"
        write_json_atomic(path, OLD)
        write_json_atomic(path, NEW)

        delete_json(path)
        delete_json(path)  # already gone: fine

        assert sorted(tmp_path.iterdir()) == []


class TestRefusedWrites:
    @pytest.mark.parametrize(
        "data",
        [
            pytest.param({"when": object()}, id="not-serializable"),
            pytest.param({"fps": float("nan")}, id="nan"),
        ],
    )
    def test_data_that_is_not_json_touches_nothing(self, tmp_path: Path, data: object) -> None:
        path = tmp_path / "state.json"
        write_json_atomic(path, OLD)
        before = sorted(tmp_path.iterdir())

        with pytest.raises(StoreError, match="cannot be written as JSON"):
            write_json_atomic(path, data)

        assert sorted(tmp_path.iterdir()) == before
        assert read_json(path).value == OLD

    def test_data_too_large_to_read_back_touches_nothing(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "state.json"
        write_json_atomic(path, OLD)
        monkeypatch.setattr(atomic, "MAX_BYTES", 1000)

        with pytest.raises(StoreError, match="more than"):
            write_json_atomic(path, {"blob": "x" * 2000})

        assert read_json(path).value == OLD
        assert not backup_path(path).exists()


class FailOn:
    """Replace ``os.<name>`` so that its ``nth`` call raises EIO, as a failing disk would."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str, nth: int) -> None:
        self.real: Callable[..., Any] = getattr(os, name)
        self.name, self.nth, self.calls = name, nth, 0
        monkeypatch.setattr(os, name, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.nth:
            raise OSError(errno.EIO, f"injected failure in os.{self.name}")
        return self.real(*args, **kwargs)


class TestInterruptedWrites:
    """A failure injected between the steps of a write over an existing file."""

    @pytest.mark.parametrize(
        ("step", "nth", "left"),
        [
            pytest.param("fsync", 1, OLD, id="fsync-of-the-new-file"),
            pytest.param("replace", 1, OLD, id="replace-of-the-backup"),
            pytest.param("replace", 2, OLD, id="replace-of-the-file"),
        ],
    )
    def test_a_failed_step_leaves_the_old_version_whole(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        step: str,
        nth: int,
        left: dict[str, Any],
    ) -> None:
        path = tmp_path / "profile.json"
        write_json_atomic(path, OLD)
        failing = FailOn(monkeypatch, step, nth)

        with pytest.raises(StoreError, match="The previous version is unchanged") as caught:
            write_json_atomic(path, NEW)

        assert failing.calls == nth
        assert "injected failure" in str(caught.value)
        monkeypatch.undo()
        assert read_json(path) == ReadResult(left, Source.FILE)
        assert leftovers(tmp_path) == []
        write_json_atomic(path, NEW)  # and the next save works
        assert read_json(path).value == NEW

    def test_a_failed_fsync_of_the_folder_keeps_the_new_version_and_warns(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        if os.name == "nt":
            pytest.skip("Windows has no folder fsync")
        path = tmp_path / "profile.json"
        write_json_atomic(path, OLD)
        FailOn(monkeypatch, "fsync", 2)  # 1: the new file, 2: the folder

        write_json_atomic(path, NEW)

        monkeypatch.undo()
        assert read_json(path) == ReadResult(NEW, Source.FILE)
        assert "may not survive a power cut" in caplog.text

    def test_leftovers_of_crashed_writes_are_cleared_by_the_next_one(self, tmp_path: Path) -> None:
        path = tmp_path / "profile.json"
        stale = tmp_path / ".profile.json.new-0badc0de.tmp"
        fresh = tmp_path / ".profile.json.new-5ca1ab1e.tmp"  # maybe a write in progress
        for leftover in (stale, fresh):
            leftover.write_text('{"half": ')
        an_hour_ago = time.time() - 3600
        os.utime(stale, (an_hour_ago, an_hour_ago))

        write_json_atomic(path, NEW)

        assert not stale.exists()
        assert fresh.exists()


WRITER = """
import json, sys
from pathlib import Path
from agent.store.atomic import write_json_atomic

path, size = Path(sys.argv[1]), int(sys.argv[2])
n = json.loads(path.read_text())["n"]
print("ready", flush=True)
while True:
    n += 1
    write_json_atomic(path, {"n": n, "blob": str(n % 10) * size, "end": True})
"""


class TestKilledWriter:
    KILLS = 25
    BLOB = 512 * 1024  # big enough that a kill often lands inside a write

    def test_a_writer_killed_at_any_moment_leaves_a_whole_version(self, tmp_path: Path) -> None:
        if os.name == "nt":
            pytest.skip("SIGKILL is POSIX")
        import signal

        path = tmp_path / "profile.json"
        write_json_atomic(path, {"n": 0, "blob": "0" * self.BLOB, "end": True})
        rng = random.Random(4)
        last_n = 0
        for _ in range(self.KILLS):
            writer = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(path), str(self.BLOB)],
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert writer.stdout is not None
            assert writer.stdout.readline() == "ready\n"
            time.sleep(rng.uniform(0.0, 0.06))
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            writer.stdout.close()

            result = read_json(path)
            assert result.source is Source.FILE, result.message
            value = result.value
            assert value is not None and value["end"] is True
            n = value["n"]
            assert value["blob"] == str(n % 10) * self.BLOB
            assert n >= last_n  # what was saved never goes back
            last_n = n
            if backup_path(path).exists():
                backup = json.loads(backup_path(path).read_text())
                assert backup["end"] is True and backup["n"] <= n
        assert last_n > 0, "the writers never finished a single write"
        # Kills inside a write leave its temporary file (cleared once it is old): proof that
        # the kills did land mid-write and not only between writes.
        assert leftovers(tmp_path), "no kill landed inside a write; raise BLOB"


DAMAGE: dict[str, Callable[[Path], object]] = {
    "garbage-bytes": lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe garbage"),
    "zero-filled": lambda p: p.write_bytes(b"\x00" * 4096),  # what a power cut can leave
    "truncated-json": lambda p: p.write_text('{"n": 7, "groups": [{"id": "ma'),
    "empty": lambda p: p.write_bytes(b""),
    "json-list": lambda p: p.write_text("[1, 2, 3]"),
    "wrong-types": lambda p: p.write_text('{"n": "seven"}'),
    "a-folder": lambda p: p.mkdir(),
    "enormous": lambda p: _sparse(p, 50 * 1024 * 1024),
}


def _sparse(path: Path, size: int) -> None:
    """A 50 MB file that costs no time: sparse, so the test stays fast."""
    with open(path, "wb") as file:
        file.write(b'{"n": ')
        file.truncate(size)


REASONS = {
    "garbage-bytes": "binary data",
    "zero-filled": "not valid JSON",
    "truncated-json": "not valid JSON",
    "empty": "it is empty",
    "json-list": "JSON list where an object belongs",
    "wrong-types": 'n: expected a whole number, got "seven"',
    "a-folder": "folder",
    "enormous": "it is 50 MB",
}


class TestDamagedFiles:
    @pytest.mark.parametrize("kind", list(DAMAGE))
    def test_the_backup_is_used_and_the_damaged_file_kept_aside(
        self, tmp_path: Path, kind: str
    ) -> None:
        path = tmp_path / "counter.json"
        backup_path(path).write_text('{"n": 1}')
        DAMAGE[kind](path)
        size = path.stat().st_size if path.is_file() else None

        result = read_json(path, decode_counter, now=NOW)

        assert (result.value, result.source) == (1, Source.BACKUP)
        kept = tmp_path / "counter.json.corrupt-20241121-140512"
        assert result.kept == (kept,)
        assert not path.exists()
        assert kept.exists() and (size is None or kept.stat().st_size == size)
        assert result.message is not None
        assert result.message.startswith("counter.json was damaged (")
        assert REASONS[kind] in result.message
        assert "Cascade started from the backup of" in result.message
        assert str(kept) in result.message

    @pytest.mark.parametrize("kind", list(DAMAGE))
    def test_without_a_backup_the_defaults_are_used(self, tmp_path: Path, kind: str) -> None:
        path = tmp_path / "counter.json"
        DAMAGE[kind](path)

        result = read_json(path, decode_counter, now=NOW)

        assert (result.value, result.source) == (None, Source.DEFAULTS)
        assert result.kept == (tmp_path / "counter.json.corrupt-20241121-140512",)
        assert result.message is not None
        assert "has no backup; Cascade started from the defaults" in result.message

    def test_the_message_is_a_sentence_a_person_can_read(self, tmp_path: Path) -> None:
        path = tmp_path / "profiles.json"
        path.write_text("{oops")
        backup_path(path).write_text("{}")
        saved = datetime(2024, 11, 21, 14, 3).timestamp()
        os.utime(backup_path(path), (saved, saved))

        result = read_json(path, now=NOW)

        assert result.message == (
            "profiles.json was damaged (it is not valid JSON: Expecting property name enclosed "
            "in double quotes at line 1, column 2); Cascade started from the backup of "
            f"21 Nov 14:03 and kept the damaged file as {tmp_path}/"
            "profiles.json.corrupt-20241121-140512."
        )

    def test_a_damaged_backup_is_kept_aside_too(self, tmp_path: Path) -> None:
        path = tmp_path / "counter.json"
        path.write_text("[]")
        backup_path(path).write_text('{"n": ')

        result = read_json(path, decode_counter, now=NOW)

        assert (result.value, result.source) == (None, Source.DEFAULTS)
        assert result.kept == (
            tmp_path / "counter.json.corrupt-20241121-140512",
            tmp_path / "counter.json.bak.corrupt-20241121-140512",
        )
        assert result.message is not None
        assert "and so was its backup (it is not valid JSON" in result.message
        assert "kept the damaged files as" in result.message

    def test_a_missing_file_with_a_backup_starts_from_the_backup(self, tmp_path: Path) -> None:
        path = tmp_path / "counter.json"
        backup_path(path).write_text('{"n": 5}')

        result = read_json(path, decode_counter, now=NOW)

        assert (result.value, result.source, result.kept) == (5, Source.BACKUP, ())
        assert result.message is not None
        assert result.message.startswith("counter.json was missing; Cascade started from")

    def test_a_first_run_is_not_a_problem(self, tmp_path: Path) -> None:
        result = read_json(tmp_path / "counter.json", decode_counter)

        assert result == ReadResult(None, Source.DEFAULTS)
        assert list(tmp_path.iterdir()) == []

    def test_files_damaged_in_the_same_second_are_all_kept(self, tmp_path: Path) -> None:
        path = tmp_path / "counter.json"
        path.write_text("first damage")
        read_json(path, now=NOW)
        path.write_text("second damage")

        result = read_json(path, now=NOW)

        first = tmp_path / "counter.json.corrupt-20241121-140512"
        assert result.kept == (tmp_path / "counter.json.corrupt-20241121-140512-2",)
        assert first.read_text() == "first damage"
        assert result.kept[0].read_text() == "second damage"

    def test_a_refusal_from_the_decoder_moves_nothing(self, tmp_path: Path) -> None:
        # A StoreError (say, a newer schema) means "do not touch", not "damaged".
        path = tmp_path / "counter.json"
        path.write_text('{"n": 99}')

        def refuse(data: dict[str, Any]) -> int:
            raise StoreError("saved by a newer Cascade")

        with pytest.raises(StoreError, match="newer"):
            read_json(path, refuse)
        assert path.read_text() == '{"n": 99}'
        assert kept_aside(tmp_path) == []

    def test_a_write_over_a_damaged_file_keeps_it_aside_first(self, tmp_path: Path) -> None:
        path = tmp_path / "counter.json"
        write_json_atomic(path, {"n": 1})
        write_json_atomic(path, {"n": 2})
        path.write_bytes(b"\x00\x00 torn")

        write_json_atomic(path, {"n": 3}, now=NOW)

        assert json.loads(path.read_text()) == {"n": 3}
        kept = tmp_path / "counter.json.corrupt-20241121-140512"
        assert kept.read_bytes() == b"\x00\x00 torn"
        # The damaged file never became the backup: the last good version still is.
        assert json.loads(backup_path(path).read_text()) == {"n": 1}
