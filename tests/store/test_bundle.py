"""Bundles: a profile and its keys in one password-encrypted file, and every bad file refused
cleanly with nothing changed."""

from __future__ import annotations

import json
import os
import struct
import time
import unicodedata
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from keyring.backends import SecretService

from agent import __version__
from agent.core.redact import REDACTOR
from agent.errors import CascadeError
from agent.store.bundle import (
    MAGIC,
    BundleDamaged,
    BundleError,
    BundleTooNew,
    BundleTruncated,
    NotABundle,
    WrongBundlePassword,
    export_bundle,
    import_bundle,
)
from agent.store.crypto import DEFAULT_KDF, KdfParams, peek_params, seal, unseal
from agent.store.secrets import KeyringStore
from agent.store.vault import VAULT_FILENAME, VaultStore
from tests.keyring_session import SecretServiceSession

LEAK_KEY = "live_SECRET_abc123+/=?&%"
CHEAP = KdfParams(time_cost=1, memory_kib=8, parallelism=1)  # real defaults: t=3 m=64 MiB
PASSWORD = "export password 1"
PROFILE = {
    "schema": 1,
    "name": "studio",
    "groups": [
        {
            "id": "main",
            "mode": "passthrough",
            "targets": [
                {"id": "twitch", "platform": "twitch", "key_ref": "keyring"},
                {"id": "youtube", "platform": "youtube", "key_ref": "keyring"},
            ],
        }
    ],
}
KEYS = {"twitch": LEAK_KEY, "youtube": "yt-0123-4567-89ab-cdef"}

# The version-1 layout (see agent.store.crypto), spelled out so the tests pin it down.
PREAMBLE = len(MAGIC) + 2 + 2 + 4  # magic, version, header length, CRC
HEADER_END = PREAMBLE + 69


def assert_no_leak(text: str, key: str = LEAK_KEY) -> None:
    """Neither the key nor any 6-character piece of it appears in ``text``."""
    assert key not in text
    for start in range(len(key) - 5):
        assert key[start : start + 6] not in text, f"a piece of the key leaked: {text!r}"


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` with its bytes and modification time."""
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def with_version(data: bytes, version: int) -> bytes:
    """``data`` with its format version changed and its preamble checksum made valid again."""
    head = data[: len(MAGIC)] + struct.pack(">HH", version, 69)
    return head + struct.pack(">I", zlib.crc32(head)) + data[PREAMBLE:]


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A bundle of PROFILE with KEYS, cheap to open."""
    path = tmp_path / "studio.cascade"
    export_bundle(PROFILE, KEYS, PASSWORD, path, kdf=CHEAP)
    return path


class TestRoundTrip:
    def test_the_profile_and_its_keys_come_back_as_they_were(self, bundle: Path) -> None:
        assert import_bundle(bundle, PASSWORD) == (PROFILE, KEYS)

    def test_an_export_without_keys_brings_back_the_layout_alone(self, tmp_path: Path) -> None:
        path = tmp_path / "layout.cascade"
        export_bundle(PROFILE, None, PASSWORD, path, kdf=CHEAP)
        assert import_bundle(path, PASSWORD) == (PROFILE, None)
        payload = json.loads(unseal(path.read_bytes(), PASSWORD, magic=MAGIC))
        assert payload["keys"] is None

    def test_the_payload_says_when_and_by_which_cascade_it_was_made(self, tmp_path: Path) -> None:
        path = tmp_path / "dated.cascade"
        moment = datetime(2026, 11, 21, 14, 3, tzinfo=UTC)
        export_bundle(PROFILE, KEYS, PASSWORD, path, kdf=CHEAP, now=moment)
        payload = json.loads(unseal(path.read_bytes(), PASSWORD, magic=MAGIC))
        assert payload["exported_at"] == "2026-11-21T14:03:00Z"
        assert payload["cascade_version"] == __version__
        assert sorted(payload) == ["cascade_version", "exported_at", "keys", "profile"]

    def test_the_real_default_parameters_round_trip(self, tmp_path: Path) -> None:
        path = tmp_path / "default.cascade"
        export_bundle(PROFILE, KEYS, PASSWORD, path)
        assert peek_params(path.read_bytes(), magic=MAGIC) == DEFAULT_KDF
        assert import_bundle(path, PASSWORD) == (PROFILE, KEYS)

    def test_a_password_typed_in_another_unicode_form_opens_it(self, tmp_path: Path) -> None:
        path = tmp_path / "accent.cascade"
        export_bundle(PROFILE, KEYS, unicodedata.normalize("NFC", "café-crème"), path, kdf=CHEAP)
        decomposed = unicodedata.normalize("NFD", "café-crème")  # as macOS may type it
        assert import_bundle(path, decomposed) == (PROFILE, KEYS)

    def test_an_import_writes_nothing(self, bundle: Path) -> None:
        config_dir = Path(os.environ["CASCADE_CONFIG_DIR"])
        before = snapshot(bundle.parent), snapshot(config_dir)
        import_bundle(bundle, PASSWORD)
        assert (snapshot(bundle.parent), snapshot(config_dir)) == before

    def test_keys_travel_to_a_fresh_keyring_on_another_machine(
        self,
        secret_service: SecretServiceSession,
        secret_service_fresh: SecretServiceSession,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        profile = f"travel-{os.urandom(4).hex()}"
        here = KeyringStore()
        for target_id, key in KEYS.items():
            here.set(profile, target_id, key)
        path = tmp_path / "travel.cascade"
        export_bundle(
            PROFILE, {t: here.get(profile, t) or "" for t in KEYS}, PASSWORD, path, kdf=CHEAP
        )

        # "Another machine": a second Secret Service with an empty login keyring.
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", secret_service_fresh.address)
        there = KeyringStore(SecretService.Keyring())
        assert [there.get(profile, t) for t in KEYS] == [None, None]
        layout, keys = import_bundle(path, PASSWORD)
        assert layout == PROFILE and keys is not None
        for target_id, key in keys.items():
            there.set(profile, target_id, key)
        assert {t: KeyringStore(SecretService.Keyring()).get(profile, t) for t in KEYS} == KEYS

        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", secret_service.address)
        assert {t: KeyringStore().get(profile, t) for t in KEYS} == KEYS

    def test_keys_travel_into_a_new_vault(self, bundle: Path, tmp_path: Path) -> None:
        _, keys = import_bundle(bundle, PASSWORD)
        assert keys is not None
        vault = VaultStore(tmp_path / "machine-b" / VAULT_FILENAME, "vault passphrase", kdf=CHEAP)
        for target_id, key in keys.items():
            vault.set("studio", target_id, key)
        reopened = VaultStore(vault.path, "vault passphrase", kdf=CHEAP)
        assert {t: reopened.get("studio", t) for t in KEYS} == KEYS


class TestExportRefusals:
    def test_a_short_password_is_refused_and_nothing_is_written(self, tmp_path: Path) -> None:
        path = tmp_path / "weak.cascade"
        with pytest.raises(BundleError, match="at least 8 characters"):
            export_bundle(PROFILE, KEYS, "1234567", path, kdf=CHEAP)
        assert not path.exists()

    def test_an_existing_file_is_not_replaced_unless_asked(self, bundle: Path) -> None:
        before = bundle.read_bytes()
        with pytest.raises(BundleError, match="already exists"):
            export_bundle(PROFILE, None, PASSWORD, bundle, kdf=CHEAP)
        assert bundle.read_bytes() == before
        export_bundle(PROFILE, None, PASSWORD, bundle, kdf=CHEAP, overwrite=True)
        assert import_bundle(bundle, PASSWORD) == (PROFILE, None)

    def test_a_place_that_cannot_be_written_is_a_clear_error(self, tmp_path: Path) -> None:
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        with pytest.raises(BundleError, match="could not be written"):
            export_bundle(PROFILE, KEYS, PASSWORD, blocker / "x.cascade", kdf=CHEAP)

    def test_an_empty_key_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(BundleError, match="target 'twitch' is not a usable stream key"):
            export_bundle(PROFILE, {"twitch": ""}, PASSWORD, tmp_path / "x.cascade", kdf=CHEAP)
        assert not (tmp_path / "x.cascade").exists()


class TestImportRefusals:
    def test_a_wrong_password(self, bundle: Path) -> None:
        with pytest.raises(WrongBundlePassword) as caught:
            import_bundle(bundle, "not the password")
        message = str(caught.value)
        assert message == (
            f"bundle {bundle}: the password is wrong. Use the password given when it was "
            "exported. Nothing was changed"
        )

    def test_a_flipped_byte_anywhere_is_refused(self, bundle: Path) -> None:
        original = bundle.read_bytes()
        assert len(original) > HEADER_END + 16
        for offset in range(len(original)):
            damaged = bytearray(original)
            damaged[offset] ^= 0x80
            bundle.write_bytes(bytes(damaged))
            expected = NotABundle if offset < len(MAGIC) else BundleDamaged
            with pytest.raises(expected):
                import_bundle(bundle, PASSWORD)
            assert bundle.read_bytes() == bytes(damaged), f"offset {offset} was rewritten"

    @pytest.mark.parametrize(
        "length",
        [
            pytest.param(0, id="empty"),
            pytest.param(3, id="inside-magic"),
            pytest.param(len(MAGIC) + 1, id="inside-preamble"),
            pytest.param(PREAMBLE, id="preamble-only"),
            pytest.param(PREAMBLE + 20, id="inside-salt"),
            pytest.param(HEADER_END - 1, id="inside-header"),
            pytest.param(HEADER_END, id="header-only"),
            pytest.param(HEADER_END + 10, id="inside-ciphertext"),
            pytest.param(-16, id="tag-missing"),
            pytest.param(-1, id="last-byte-missing"),
        ],
    )
    def test_a_truncated_bundle_is_refused(self, bundle: Path, length: int) -> None:
        bundle.write_bytes(bundle.read_bytes()[:length])
        with pytest.raises(BundleTruncated) as caught:
            import_bundle(bundle, PASSWORD)
        assert "is cut short" in str(caught.value)
        assert "Copy or download it again" in str(caught.value)

    def test_extra_bytes_after_the_end_are_refused(self, bundle: Path) -> None:
        bundle.write_bytes(bundle.read_bytes() + b"\n")
        with pytest.raises(BundleDamaged, match="unexpected bytes after its end"):
            import_bundle(bundle, PASSWORD)

    def test_a_bundle_from_a_newer_cascade_says_to_update(self, bundle: Path) -> None:
        bundle.write_bytes(with_version(bundle.read_bytes(), 2))
        with pytest.raises(BundleTooNew) as caught:
            import_bundle(bundle, PASSWORD)
        assert str(caught.value) == (
            f"bundle {bundle}: was made by a newer Cascade (bundle format 2). Update Cascade on "
            "this machine, then import it again. Nothing was changed"
        )

    @pytest.mark.parametrize(
        "content",
        [
            pytest.param(b"\x89PNG\r\n\x1a\n" + bytes(64), id="png"),
            pytest.param(json.dumps(PROFILE).encode(), id="profile-json"),
            pytest.param(b"CASCADE-VAULT" + bytes(80), id="vault-magic"),
            pytest.param(b"hello", id="short-text"),
        ],
    )
    def test_a_file_that_is_not_a_bundle_is_refused(self, tmp_path: Path, content: bytes) -> None:
        path = tmp_path / "other.file"
        path.write_bytes(content)
        with pytest.raises(NotABundle, match="is not a Cascade bundle"):
            import_bundle(path, PASSWORD)

    def test_a_vault_is_not_a_bundle(self, tmp_path: Path) -> None:
        vault = VaultStore(tmp_path / VAULT_FILENAME, PASSWORD, kdf=CHEAP)
        vault.set("studio", "twitch", LEAK_KEY)
        with pytest.raises(NotABundle):
            import_bundle(vault.path, PASSWORD)

    def test_a_missing_file_is_a_clear_error(self, tmp_path: Path) -> None:
        with pytest.raises(BundleError, match="could not be read: No such file"):
            import_bundle(tmp_path / "nowhere.cascade", PASSWORD)

    def test_crafted_kdf_settings_are_refused_before_any_derivation(self, bundle: Path) -> None:
        data = bytearray(bundle.read_bytes())
        struct.pack_into(">I", data, PREAMBLE + 1, 1000)  # a thousand Argon2 passes
        struct.pack_into(">I", data, HEADER_END - 4, zlib.crc32(data[: HEADER_END - 4]))
        bundle.write_bytes(bytes(data))
        started = time.monotonic()
        with pytest.raises(BundleDamaged, match="key-derivation settings are refused"):
            import_bundle(bundle, PASSWORD)
        assert time.monotonic() - started < 1.0

    def test_an_authentic_payload_that_is_no_profile_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "odd.cascade"
        path.write_bytes(seal(b'{"profile": [1, 2]}', PASSWORD, magic=MAGIC, params=CHEAP))
        with pytest.raises(BundleDamaged, match="something other than a Cascade profile"):
            import_bundle(path, PASSWORD)

    def test_each_failure_has_its_own_class_under_bundle_error(self) -> None:
        classes = {NotABundle, BundleTruncated, BundleDamaged, WrongBundlePassword, BundleTooNew}
        assert len(classes) == 5
        for cls in classes:
            assert issubclass(cls, BundleError) and issubclass(cls, CascadeError)
            others = classes - {cls}
            assert not any(issubclass(cls, other) for other in others)


class TestSecrecy:
    def test_the_file_holds_no_key_and_no_profile_text(self, bundle: Path) -> None:
        data = bundle.read_bytes()
        for text in (LEAK_KEY, "SECRET", KEYS["youtube"], "twitch", "studio", "passthrough"):
            assert text.encode() not in data

    def test_keys_read_from_a_bundle_are_registered_with_the_redactor(self, tmp_path: Path) -> None:
        key = f"bundle-key-{os.urandom(6).hex()}"
        payload = json.dumps({"profile": PROFILE, "keys": {"twitch": key}}).encode()
        path = tmp_path / "sealed.cascade"
        path.write_bytes(seal(payload, PASSWORD, magic=MAGIC, params=CHEAP))
        assert REDACTOR.redact(key) == key
        import_bundle(path, PASSWORD)
        assert REDACTOR.redact(key) == "[redacted]"

    def test_no_error_contains_a_key_or_the_password(self, bundle: Path, tmp_path: Path) -> None:
        original = bundle.read_bytes()
        texts: list[str] = []
        attempts: list[tuple[bytes, str]] = [
            (original, "not the password"),
            (original[:50], PASSWORD),
            (original[:-1], PASSWORD),
            (original[:30] + bytes([original[30] ^ 1]) + original[31:], PASSWORD),
            (original[:-5] + bytes([original[-5] ^ 1]) + original[-4:], PASSWORD),
            (with_version(original, 7), PASSWORD),
            (b"garbage", PASSWORD),
        ]
        for content, password in attempts:
            bundle.write_bytes(content)
            try:
                import_bundle(bundle, password)
            except CascadeError as exc:
                texts.append(str(exc))
        try:
            export_bundle(PROFILE, KEYS, "short", tmp_path / "weak.cascade", kdf=CHEAP)
        except CascadeError as exc:
            texts.append(str(exc))
        assert len(texts) == len(attempts) + 1
        for text in texts:
            assert_no_leak(text)
            assert_no_leak(text, KEYS["youtube"])
            assert PASSWORD not in text
