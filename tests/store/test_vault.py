"""The encrypted vault: keys round-trip, the file reveals nothing, and no bad file is touched."""

from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from agent.core.redact import REDACTOR
from agent.errors import CascadeError
from agent.store import vault as vault_module
from agent.store.crypto import DEFAULT_KDF, KdfParams, peek_params, seal
from agent.store.vault import (
    MAGIC,
    VAULT_FILENAME,
    NotAVault,
    VaultDamaged,
    VaultError,
    VaultStore,
    VaultTooNew,
    VaultTruncated,
    VaultWrongPassphrase,
)

LEAK_KEY = "live_SECRET_abc123+/=?&%"
CHEAP = KdfParams(time_cost=1, memory_kib=8, parallelism=1)  # real defaults: t=3 m=64 MiB
PASSPHRASE = "correct horse battery"

# The version-1 layout (see agent.store.crypto), spelled out here so the tests pin it down.
PREAMBLE = len(MAGIC) + 2 + 2 + 4  # magic, version, header length, CRC
SALT = slice(PREAMBLE + 13, PREAMBLE + 29)
NONCE = slice(PREAMBLE + 29, PREAMBLE + 41)
HEADER_END = PREAMBLE + 69


def assert_no_leak(text: str, key: str = LEAK_KEY) -> None:
    """Neither the key nor any 6-character piece of it appears in ``text``."""
    assert key not in text
    for start in range(len(key) - 5):
        assert key[start : start + 6] not in text, f"a piece of the key leaked: {text!r}"


def vault_at(config_dir: Path, passphrase: str = PASSPHRASE) -> VaultStore:
    return VaultStore(config_dir / VAULT_FILENAME, passphrase, kdf=CHEAP)


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    """A vault holding LEAK_KEY for target 'twitch' of profile 'default'; its path."""
    vault_at(tmp_path).set("default", "twitch", LEAK_KEY)
    return tmp_path / VAULT_FILENAME


def with_version(data: bytes, version: int) -> bytes:
    """``data`` with its format version changed and its preamble checksum made valid again."""
    head = data[: len(MAGIC)] + struct.pack(">HH", version, 69)
    return head + struct.pack(">I", zlib.crc32(head)) + data[PREAMBLE:]


class TestRoundTrip:
    def test_a_key_round_trips_and_outlives_the_store_object(self, tmp_path: Path) -> None:
        vault_at(tmp_path).set("default", "twitch", LEAK_KEY)
        assert vault_at(tmp_path).get("default", "twitch") == LEAK_KEY

    def test_profiles_and_targets_are_kept_apart(self, tmp_path: Path) -> None:
        store = vault_at(tmp_path)
        store.set("default", "twitch", "key-one")
        store.set("default", "youtube", "key-two")
        store.set("travel", "twitch", "key-three")
        fresh = vault_at(tmp_path)
        assert fresh.get("default", "twitch") == "key-one"
        assert fresh.get("default", "youtube") == "key-two"
        assert fresh.get("travel", "twitch") == "key-three"
        assert fresh.get("travel", "youtube") is None

    def test_delete_forgets_the_key_and_says_whether_there_was_one(self, tmp_path: Path) -> None:
        store = vault_at(tmp_path)
        store.set("default", "twitch", LEAK_KEY)
        store.set("default", "kick", "kept")
        assert store.delete("default", "twitch") is True
        assert store.delete("default", "twitch") is False
        assert vault_at(tmp_path).get("default", "twitch") is None
        assert vault_at(tmp_path).get("default", "kick") == "kept"

    def test_no_vault_yet_reads_as_empty_and_the_first_write_creates_it(
        self, tmp_path: Path
    ) -> None:
        store = vault_at(tmp_path / "new")
        store.unlock()
        assert store.get("default", "twitch") is None
        assert not store.path.exists()
        store.set("default", "twitch", LEAK_KEY)
        assert store.path.exists()

    def test_storing_the_same_key_again_leaves_the_file_as_it_was(self, filled: Path) -> None:
        before = filled.read_bytes()
        vault_at(filled.parent).set("default", "twitch", LEAK_KEY)
        assert filled.read_bytes() == before

    def test_the_real_default_parameters_round_trip(self, tmp_path: Path) -> None:
        store = VaultStore(tmp_path / VAULT_FILENAME, PASSPHRASE)
        store.set("default", "twitch", LEAK_KEY)
        assert peek_params(store.path.read_bytes(), magic=MAGIC) == DEFAULT_KDF
        assert VaultStore(store.path, PASSPHRASE).get("default", "twitch") == LEAK_KEY

    def test_two_processes_writing_at_once_lose_no_key(self, tmp_path: Path) -> None:
        script = (
            "import sys\n"
            "from pathlib import Path\n"
            "from agent.store.crypto import KdfParams\n"
            "from agent.store.vault import VaultStore\n"
            "store = VaultStore(Path(sys.argv[1]), 'correct horse battery',"
            " kdf=KdfParams(1, 8, 1))\n"
            "for n in range(15):\n"
            "    store.set('default', f'{sys.argv[2]}{n}', f'key-{sys.argv[2]}{n}')\n"
        )
        path = tmp_path / VAULT_FILENAME
        procs = [
            subprocess.Popen([sys.executable, "-c", script, str(path), name], cwd=os.getcwd())
            for name in ("a", "b")
        ]
        assert [proc.wait(timeout=60) for proc in procs] == [0, 0]
        store = vault_at(tmp_path)
        for name in ("a", "b"):
            for n in range(15):
                assert store.get("default", f"{name}{n}") == f"key-{name}{n}"


class TestOnDisk:
    def test_the_file_holds_no_key_and_no_name_in_any_form(self, filled: Path) -> None:
        data = filled.read_bytes()
        for form in (LEAK_KEY, quote(LEAK_KEY, safe=""), "SECRET", "twitch", "default"):
            assert form.encode() not in data

    @pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
    def test_the_file_is_readable_by_its_owner_only(self, filled: Path) -> None:
        assert filled.stat().st_mode & 0o777 == 0o600

    def test_the_header_states_the_format_and_the_kdf_parameters(self, filled: Path) -> None:
        data = filled.read_bytes()
        assert data.startswith(MAGIC)
        assert struct.unpack_from(">H", data, len(MAGIC)) == (1,)
        assert peek_params(data, magic=MAGIC) == CHEAP

    def test_every_write_uses_a_fresh_salt_and_nonce(self, tmp_path: Path) -> None:
        store = vault_at(tmp_path)
        seen: list[bytes] = []
        for key in ("one-key", "two-key", "one-key"):
            store.set("default", "twitch", key)
            seen.append(store.path.read_bytes())
        assert len({data[SALT] for data in seen}) == 3
        assert len({data[NONCE] for data in seen}) == 3

    def test_the_stated_defaults_are_argon2id_t3_64mib_p1(self, tmp_path: Path) -> None:
        stated = (DEFAULT_KDF.time_cost, DEFAULT_KDF.memory_kib, DEFAULT_KDF.parallelism)
        assert stated == (3, 64 * 1024, 1)
        described = VaultStore(tmp_path / VAULT_FILENAME, PASSPHRASE).describe()
        assert "AES-256-GCM" in described and "Argon2id t=3 m=64 MiB p=1" in described


class TestRefusedFiles:
    def test_a_wrong_passphrase_is_refused_and_the_file_untouched(self, filled: Path) -> None:
        before = filled.read_bytes()
        wrong = vault_at(filled.parent, "not the passphrase")
        with pytest.raises(VaultWrongPassphrase) as caught:
            wrong.get("default", "twitch")
        assert "passphrase does not open it" in str(caught.value)
        with pytest.raises(VaultWrongPassphrase):
            wrong.set("default", "youtube", "another-key")
        with pytest.raises(VaultWrongPassphrase):
            wrong.delete("default", "twitch")
        assert filled.read_bytes() == before

    def test_a_flipped_byte_anywhere_is_refused_and_the_file_untouched(self, filled: Path) -> None:
        original = filled.read_bytes()
        for offset in range(len(original)):
            damaged = bytearray(original)
            damaged[offset] ^= 0x01
            filled.write_bytes(bytes(damaged))
            expected = NotAVault if offset < len(MAGIC) else VaultDamaged
            with pytest.raises(expected):
                vault_at(filled.parent).get("default", "twitch")
            with pytest.raises(expected):
                vault_at(filled.parent).set("default", "youtube", "another-key")
            assert filled.read_bytes() == bytes(damaged), f"offset {offset} was rewritten"

    @pytest.mark.parametrize(
        "length",
        [0, 1, len(MAGIC) - 1, len(MAGIC) + 1, PREAMBLE, HEADER_END - 1, HEADER_END, -17, -1],
    )
    def test_a_truncated_vault_is_refused_and_left_as_it_is(
        self, filled: Path, length: int
    ) -> None:
        cut = filled.read_bytes()[:length]
        filled.write_bytes(cut)
        with pytest.raises(VaultTruncated) as caught:
            vault_at(filled.parent).set("default", "youtube", "another-key")
        assert "cut short" in str(caught.value)
        assert filled.read_bytes() == cut

    def test_a_vault_from_a_newer_cascade_is_refused(self, filled: Path) -> None:
        newer = with_version(filled.read_bytes(), 2)
        filled.write_bytes(newer)
        with pytest.raises(VaultTooNew) as caught:
            vault_at(filled.parent).set("default", "youtube", "another-key")
        assert "newer Cascade" in str(caught.value) and "Update Cascade" in str(caught.value)
        assert filled.read_bytes() == newer

    def test_another_file_in_its_place_is_refused_untouched(self, tmp_path: Path) -> None:
        path = tmp_path / VAULT_FILENAME
        path.write_text('{"twitch": "a plain-text key someone left here"}')
        with pytest.raises(NotAVault, match="is not a Cascade vault"):
            vault_at(tmp_path).set("default", "twitch", LEAK_KEY)
        assert path.read_text() == '{"twitch": "a plain-text key someone left here"}'

    def test_crafted_kdf_settings_are_refused_before_any_derivation(self, filled: Path) -> None:
        data = bytearray(filled.read_bytes())
        struct.pack_into(">I", data, PREAMBLE + 5, 4 * 1024 * 1024)  # 4 GiB of memory
        struct.pack_into(">I", data, HEADER_END - 4, zlib.crc32(data[: HEADER_END - 4]))
        filled.write_bytes(bytes(data))
        started = time.monotonic()
        with pytest.raises(VaultDamaged, match="key-derivation settings are refused"):
            vault_at(filled.parent).get("default", "twitch")
        assert time.monotonic() - started < 1.0

    def test_a_short_passphrase_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(VaultError, match="at least 8 characters"):
            VaultStore(tmp_path / VAULT_FILENAME, "short", kdf=CHEAP)

    def test_a_failed_write_keeps_the_previous_vault_and_leaves_no_temporary_file(
        self, filled: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        before = filled.read_bytes()

        def disk_full(source: object, target: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(vault_module.os, "replace", disk_full)
        with pytest.raises(VaultError, match="could not be saved: No space left on device"):
            vault_at(filled.parent).set("default", "youtube", "another-key")
        monkeypatch.undo()
        assert filled.read_bytes() == before
        assert not list(filled.parent.glob("*.tmp"))
        assert vault_at(filled.parent).get("default", "twitch") == LEAK_KEY


@pytest.fixture
def clean_redactor() -> Iterator[None]:
    """The process-wide redactor without what earlier tests registered (a fuzzed key can be
    a substring of this test's keys), restored afterwards."""
    saved = (REDACTOR._forms, REDACTOR._patterns)
    REDACTOR._forms, REDACTOR._patterns = (), ()
    yield
    REDACTOR._forms = tuple(sorted({*saved[0], *REDACTOR._forms}, key=len, reverse=True))
    REDACTOR._patterns = (*saved[1], *(p for p in REDACTOR._patterns if p not in saved[1]))


class TestSecrecy:
    @pytest.mark.usefixtures("clean_redactor")
    def test_every_key_read_from_the_vault_is_registered_with_the_redactor(
        self, tmp_path: Path
    ) -> None:
        keys = [f"vault-key-{os.urandom(6).hex()}" for _ in range(2)]
        # Sealed directly, as another process would have written it: nothing registered yet.
        payload = json.dumps(
            {"format": 1, "keys": {"default": {"twitch": keys[0]}, "travel": {"kick": keys[1]}}}
        )
        (tmp_path / VAULT_FILENAME).write_bytes(
            seal(payload.encode(), PASSPHRASE, magic=MAGIC, params=CHEAP)
        )
        assert [REDACTOR.redact(key) for key in keys] == keys
        vault_at(tmp_path).unlock()
        assert [REDACTOR.redact(key) for key in keys] == ["[redacted]", "[redacted]"]

    def test_no_error_and_no_description_contains_the_key(self, filled: Path) -> None:
        texts = [vault_at(filled.parent).describe()]
        original = filled.read_bytes()
        variants = [
            original[:40],
            original[:5] + b"\x00" + original[6:],
            original[:-3] + bytes([original[-3] ^ 1]) + original[-2:],
            with_version(original, 9),
            b"not a vault at all",
        ]
        for variant in variants:
            filled.write_bytes(variant)
            try:
                vault_at(filled.parent).get("default", "twitch")
            except CascadeError as exc:
                texts.append(str(exc))
        filled.write_bytes(original)
        try:
            vault_at(filled.parent, "not the passphrase").get("default", "twitch")
        except CascadeError as exc:
            texts.append(str(exc))
        assert len(texts) == 7
        for text in texts:
            assert_no_leak(text)
