"""Stream keys in the OS keyring: the real Secret Service, refused backends, key references."""

from __future__ import annotations

import gc
import uuid
import warnings
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, cast

import keyring
import pytest
import secretstorage
from keyring.backend import KeyringBackend
from keyring.backends import SecretService, chainer, fail, null

from agent.core.model import Platform, Target
from agent.core.redact import REDACTOR
from agent.errors import CascadeError, ConfigError
from agent.store.crypto import KdfParams
from agent.store.secrets import (
    SERVICE_NAME,
    VAULT_PASSPHRASE_ENV,
    KeyringFailed,
    KeyringRefused,
    KeyringStore,
    MissingKey,
    NoSecretStore,
    choose_store,
    resolve_key,
)
from agent.store.vault import VAULT_FILENAME, VaultStore, VaultWrongPassphrase
from tests.keyring_session import SecretServiceSession

#: A key a leak would show: every character class a URL or a shell might mangle.
LEAK_KEY = "live_SECRET_abc123+/=?&%"
CHEAP = KdfParams(time_cost=1, memory_kib=8, parallelism=1)  # real defaults: t=3 m=64 MiB
PASSPHRASE = "correct horse battery"


def fresh_key(label: str) -> str:
    """A key no other test has registered with the process-wide redactor."""
    return f"live_{label}_{uuid.uuid4().hex}"


def assert_no_leak(text: str, key: str = LEAK_KEY) -> None:
    """Neither the key nor any 6-character piece of it appears in ``text``."""
    assert key not in text
    for start in range(len(key) - 5):
        assert key[start : start + 6] not in text, f"a piece of the key leaked: {text!r}"


@pytest.fixture
def profile_name() -> str:
    """A profile name of this test alone, so entries in the shared keyring never collide."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def keyring_leaks_locked_connection() -> Iterator[None]:
    """Collect the D-Bus socket keyring leaks when it finds the collection locked.

    keyring's SecretService backend raises KeyringLocked from ``get_preferred_collection``
    before it reaches its ``with closing(connection)``, so that socket is only closed by the
    garbage collector, with a ResourceWarning (harmless in the agent, where ResourceWarning is
    ignored). Collect it here, where it is expected, instead of failing whichever later test
    the collector happens to run in.
    """
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


class _Recorder:
    """A duck-typed backend that records calls. Not a KeyringBackend subclass on purpose:
    keyring registers every subclass and could pick it for other tests."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.saved: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        self.calls.append(("get", service, username))
        return self.saved.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.calls.append(("set", service, username))
        self.saved[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.calls.append(("delete", service, username))
        del self.saved[(service, username)]


def _pretend(module: str, name: str) -> KeyringBackend:
    """A recorder dressed as the backend ``module.name``."""
    cls = type(name, (_Recorder,), {"__module__": module, "__qualname__": name})
    return cast(KeyringBackend, cls())


def plaintext_backend() -> KeyringBackend:
    """keyrings.alt's plaintext file backend if it is installed, else a stand-in with the same
    module and class name (which is all Cascade's check may rely on)."""
    try:
        from keyrings.alt.file import PlaintextKeyring  # type: ignore[import-not-found]
    except ImportError:
        return _pretend("keyrings.alt.file", "PlaintextKeyring")
    return cast(KeyringBackend, PlaintextKeyring())


class _Broken(_Recorder):
    """A backend whose every call fails with a message that repeats what it was given."""

    def get_password(self, service: str, username: str) -> str | None:
        raise RuntimeError(f"backend exploded reading {username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise RuntimeError(f"backend exploded storing {password!r} for {username}")


# --- the real Secret Service ----------------------------------------------------------------


class TestKeyringStoreOnTheSecretService:
    def test_keyring_uses_its_secret_service_backend(
        self, secret_service: SecretServiceSession
    ) -> None:
        store = KeyringStore()
        assert isinstance(store.backend, SecretService.Keyring)
        assert "Secret Service" in store.describe()
        assert SERVICE_NAME in store.describe()

    def test_a_key_round_trips(
        self, secret_service: SecretServiceSession, profile_name: str
    ) -> None:
        key = fresh_key("roundtrip")
        KeyringStore().set(profile_name, "twitch", key)
        assert KeyringStore().get(profile_name, "twitch") == key

    def test_the_entry_is_in_the_secret_service_under_service_and_profile_slash_target(
        self, secret_service: SecretServiceSession, profile_name: str
    ) -> None:
        key = fresh_key("filed")
        KeyringStore().set(profile_name, "youtube", key)
        # Read back with secretstorage directly, bypassing keyring: the entry really is in the
        # daemon's default collection, with the attributes a person would see in Seahorse.
        with closing(secretstorage.dbus_init()) as connection:
            collection = secretstorage.get_default_collection(connection)
            items = list(
                collection.search_items(
                    {"service": SERVICE_NAME, "username": f"{profile_name}/youtube"}
                )
            )
            assert [item.get_secret().decode() for item in items] == [key]

    def test_setting_again_replaces_the_key(
        self, secret_service: SecretServiceSession, profile_name: str
    ) -> None:
        store = KeyringStore()
        store.set(profile_name, "kick", fresh_key("old"))
        new = fresh_key("new")
        store.set(profile_name, "kick", new)
        assert store.get(profile_name, "kick") == new

    def test_a_key_never_stored_reads_as_none(
        self, secret_service: SecretServiceSession, profile_name: str
    ) -> None:
        assert KeyringStore().get(profile_name, "twitch") is None

    def test_profiles_keep_separate_keys_for_the_same_target_id(
        self, secret_service: SecretServiceSession, profile_name: str
    ) -> None:
        store = KeyringStore()
        first, second = fresh_key("first"), fresh_key("second")
        store.set(profile_name, "twitch", first)
        store.set(profile_name + "-b", "twitch", second)
        assert store.get(profile_name, "twitch") == first
        assert store.get(profile_name + "-b", "twitch") == second

    def test_delete_forgets_the_key_and_says_whether_there_was_one(
        self, secret_service: SecretServiceSession, profile_name: str
    ) -> None:
        store = KeyringStore()
        store.set(profile_name, "twitch", fresh_key("gone"))
        assert store.delete(profile_name, "twitch") is True
        assert store.get(profile_name, "twitch") is None
        assert store.delete(profile_name, "twitch") is False

    def test_a_key_read_is_registered_with_the_redactor(
        self, secret_service: SecretServiceSession, profile_name: str
    ) -> None:
        key = fresh_key("redact")
        # Stored behind Cascade's back, so only the read can have registered it.
        keyring.set_password(SERVICE_NAME, f"{profile_name}/twitch", key)
        assert key in REDACTOR.redact(key)  # not known to the redactor yet
        assert KeyringStore().get(profile_name, "twitch") == key
        assert REDACTOR.redact(f"rtmp://live.twitch.tv/app/{key}") == (
            "rtmp://live.twitch.tv/app/[redacted]"
        )

    def test_check_passes_on_a_running_unlocked_keyring(
        self, secret_service: SecretServiceSession
    ) -> None:
        KeyringStore().check()  # raises on failure; the read it does must succeed

    @pytest.mark.usefixtures("keyring_leaks_locked_connection")
    def test_a_locked_keyring_names_the_target_and_says_to_unlock_it(
        self, secret_service_fresh: SecretServiceSession, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", secret_service_fresh.address)
        store = KeyringStore(SecretService.Keyring())
        store.set("default", "twitch", LEAK_KEY)
        with closing(secretstorage.dbus_init()) as connection:
            secretstorage.get_default_collection(connection).lock()
        with pytest.raises(KeyringFailed) as caught:
            store.get("default", "twitch")
        message = str(caught.value)
        assert message.startswith("target 'twitch': ")
        assert "locked" in message and "Unlock it" in message
        assert_no_leak(message)

    def test_a_keyring_service_that_went_away_is_a_clear_error(
        self, secret_service_fresh: SecretServiceSession, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", secret_service_fresh.address)
        store = KeyringStore(SecretService.Keyring())
        store.set("default", "twitch", LEAK_KEY)
        secret_service_fresh.stop()
        with pytest.raises(KeyringFailed) as caught:
            store.get("default", "twitch")
        message = str(caught.value)
        assert message.startswith("target 'twitch': the OS keyring (Secret Service) could not read")
        assert "running and unlocked" in message
        assert_no_leak(message)


# --- backends Cascade refuses -----------------------------------------------------------------


class TestRefusedBackends:
    def test_keyrings_fail_backend_is_refused_with_the_options(self) -> None:
        with pytest.raises(KeyringRefused) as caught:
            KeyringStore(fail.Keyring())
        message = str(caught.value)
        assert "no usable OS keyring" in message
        assert VAULT_PASSPHRASE_ENV in message and "${ENV_VAR}" in message

    def test_keyrings_null_backend_is_refused(self) -> None:
        with pytest.raises(KeyringRefused, match="throws secrets away"):
            KeyringStore(null.Keyring())

    def test_the_keyrings_alt_plaintext_backend_is_refused(self) -> None:
        with pytest.raises(KeyringRefused, match=r"keyrings\.alt"):
            KeyringStore(plaintext_backend())

    def test_every_keyrings_alt_backend_is_refused_not_only_plaintext(self) -> None:
        with pytest.raises(KeyringRefused, match=r"keyrings\.alt"):
            KeyringStore(_pretend("keyrings.alt.file", "EncryptedKeyring"))

    def test_a_backend_named_plaintext_is_refused_wherever_it_comes_from(self) -> None:
        with pytest.raises(KeyringRefused, match="plain text"):
            KeyringStore(_pretend("someplugin.backend", "PlainTextStore"))

    def test_a_refused_backend_is_never_called(self) -> None:
        backend = plaintext_backend()
        with pytest.raises(KeyringRefused):
            KeyringStore(backend).set("default", "twitch", LEAK_KEY)
        assert getattr(backend, "calls", []) == []

    def test_a_chain_uses_its_acceptable_member_and_leaves_plaintext_out(
        self,
        secret_service: SecretServiceSession,
        monkeypatch: pytest.MonkeyPatch,
        profile_name: str,
    ) -> None:
        plain = _pretend("keyrings.alt.file", "PlaintextKeyring")
        real = SecretService.Keyring()
        # keyring sorts a chain by priority; put plaintext first to prove it is skipped anyway.
        monkeypatch.setattr(chainer.ChainerBackend, "backends", [plain, real])
        store = KeyringStore(chainer.ChainerBackend())
        assert store.backend is real
        assert "left out of keyring's chain: keyrings.alt.file.PlaintextKeyring" in (
            store.describe()
        )
        key = fresh_key("chain")
        store.set(profile_name, "twitch", key)
        assert store.get(profile_name, "twitch") == key
        assert cast(Any, plain).calls == []

    def test_a_chain_of_refused_backends_only_is_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(
            chainer.ChainerBackend, "backends", [plaintext_backend(), fail.Keyring()]
        )
        with pytest.raises(KeyringRefused, match="no acceptable backend in keyring's chain"):
            KeyringStore(chainer.ChainerBackend())

    def test_a_backend_keyring_cannot_load_is_refused_with_what_to_check(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(keyring.core, "_keyring_backend", None)
        monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "no_such_module.Keyring")
        with pytest.raises(KeyringRefused, match="PYTHON_KEYRING_BACKEND"):
            KeyringStore()

    def test_windows_refuses_a_key_longer_than_credential_locker_keeps(self) -> None:
        backend = _pretend("keyring.backends.Windows", "WinVaultKeyring")
        store = KeyringStore(backend)
        store.set("default", "custom", "k" * 1280)  # 2560 bytes as UTF-16: the limit
        with pytest.raises(KeyringFailed, match="longer than Windows Credential Locker"):
            store.set("default", "custom", "k" * 1281)
        assert [call[0] for call in cast(Any, backend).calls] == ["set"]


class TestForeignErrors:
    def test_a_backend_failure_becomes_a_cascade_error_naming_the_target(self) -> None:
        store = KeyringStore(cast(KeyringBackend, _Broken()))
        with pytest.raises(KeyringFailed) as caught:
            store.set("default", "twitch", LEAK_KEY)
        message = str(caught.value)
        assert message.startswith("target 'twitch': ")
        assert "could not save the stream key of profile 'default'" in message
        assert "RuntimeError" in message
        assert_no_leak(message)

    def test_a_failing_probe_is_a_cascade_error(self) -> None:
        with pytest.raises(KeyringFailed, match="could not reach"):
            KeyringStore(cast(KeyringBackend, _Broken())).check()

    def test_a_target_id_with_a_slash_is_refused(self) -> None:
        with pytest.raises(ConfigError):
            KeyringStore(cast(KeyringBackend, _Recorder())).get("default", "a/b")


# --- choosing the store -----------------------------------------------------------------------


class TestChooseStore:
    def test_a_usable_keyring_is_chosen(
        self, secret_service: SecretServiceSession, tmp_path: Path
    ) -> None:
        store = choose_store(tmp_path, env={}, kdf=CHEAP)
        assert isinstance(store, KeyringStore)
        assert "Secret Service" in store.describe()

    def test_the_passphrase_callback_is_not_asked_when_the_keyring_works(
        self, secret_service: SecretServiceSession, tmp_path: Path
    ) -> None:
        asked: list[str] = []
        choose_store(tmp_path, env={}, passphrase=lambda: asked.append("?") or PASSPHRASE)
        assert asked == []

    def test_without_a_keyring_the_env_passphrase_opens_a_vault(self, tmp_path: Path) -> None:
        store = choose_store(
            tmp_path, env={VAULT_PASSPHRASE_ENV: PASSPHRASE}, backend=fail.Keyring(), kdf=CHEAP
        )
        assert isinstance(store, VaultStore)
        assert store.path == tmp_path / VAULT_FILENAME
        assert "no usable OS keyring" in store.describe()
        store.set("default", "twitch", LEAK_KEY)
        assert store.get("default", "twitch") == LEAK_KEY

    def test_without_a_keyring_the_callback_is_asked_once(self, tmp_path: Path) -> None:
        asked: list[str] = []
        store = choose_store(
            tmp_path,
            env={},
            passphrase=lambda: asked.append("?") or PASSPHRASE,
            backend=fail.Keyring(),
            kdf=CHEAP,
        )
        assert isinstance(store, VaultStore)
        assert asked == ["?"]

    def test_with_neither_keyring_nor_passphrase_the_error_lists_the_options(
        self, tmp_path: Path
    ) -> None:
        with pytest.raises(NoSecretStore) as caught:
            choose_store(tmp_path, env={}, backend=fail.Keyring())
        message = str(caught.value)
        assert "nowhere safe to keep stream keys" in message
        assert "gnome-keyring" in message
        assert VAULT_PASSPHRASE_ENV in message
        assert "${ENV_VAR}" in message
        assert not (tmp_path / VAULT_FILENAME).exists()

    def test_plaintext_is_never_chosen_even_as_keyrings_choice(self, tmp_path: Path) -> None:
        store = choose_store(
            tmp_path,
            env={VAULT_PASSPHRASE_ENV: PASSPHRASE},
            backend=plaintext_backend(),
            kdf=CHEAP,
        )
        assert isinstance(store, VaultStore)
        assert "keyrings.alt" in store.describe()
        with pytest.raises(NoSecretStore, match=r"keyrings\.alt"):
            choose_store(tmp_path / "other", env={}, backend=plaintext_backend())

    @pytest.mark.usefixtures("keyring_leaks_locked_connection")
    def test_a_locked_keyring_falls_back_to_the_vault(
        self,
        secret_service_fresh: SecretServiceSession,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", secret_service_fresh.address)
        with closing(secretstorage.dbus_init()) as connection:
            secretstorage.get_default_collection(connection).lock()
        store = choose_store(
            tmp_path,
            env={VAULT_PASSPHRASE_ENV: PASSPHRASE},
            backend=SecretService.Keyring(),
            kdf=CHEAP,
        )
        assert isinstance(store, VaultStore)
        assert "locked" in store.describe()

    def test_an_existing_vault_stays_in_use_even_when_a_keyring_works(
        self, secret_service: SecretServiceSession, tmp_path: Path
    ) -> None:
        VaultStore(tmp_path / VAULT_FILENAME, PASSPHRASE, kdf=CHEAP).set("p", "twitch", LEAK_KEY)
        store = choose_store(tmp_path, env={VAULT_PASSPHRASE_ENV: PASSPHRASE}, kdf=CHEAP)
        assert isinstance(store, VaultStore)
        assert store.get("p", "twitch") == LEAK_KEY
        assert "this config directory has one" in store.describe()

    def test_an_existing_vault_without_its_passphrase_says_what_is_needed(
        self, tmp_path: Path
    ) -> None:
        VaultStore(tmp_path / VAULT_FILENAME, PASSPHRASE, kdf=CHEAP).set("p", "twitch", LEAK_KEY)
        with pytest.raises(NoSecretStore) as caught:
            choose_store(tmp_path, env={}, backend=fail.Keyring())
        assert VAULT_PASSPHRASE_ENV in str(caught.value)
        assert str(tmp_path / VAULT_FILENAME) in str(caught.value)

    def test_a_wrong_passphrase_fails_at_start_not_at_the_first_target(
        self, tmp_path: Path
    ) -> None:
        VaultStore(tmp_path / VAULT_FILENAME, PASSPHRASE, kdf=CHEAP).set("p", "twitch", LEAK_KEY)
        with pytest.raises(VaultWrongPassphrase):
            choose_store(tmp_path, env={VAULT_PASSPHRASE_ENV: "not the passphrase"})


# --- resolving a target's key ----------------------------------------------------------------


def _vault(tmp_path: Path) -> VaultStore:
    return VaultStore(tmp_path / VAULT_FILENAME, PASSPHRASE, kdf=CHEAP)


class TestResolveKey:
    def test_an_env_reference_reads_the_variable_and_registers_it(self) -> None:
        key = fresh_key("env")
        target = Target("twitch", Platform.TWITCH, key_ref="${TWITCH_KEY}")
        assert resolve_key(target, None, "default", env={"TWITCH_KEY": key}) == key
        assert REDACTOR.redact(key) == "[redacted]"

    def test_surrounding_whitespace_of_an_env_value_is_not_part_of_the_key(self) -> None:
        target = Target("twitch", Platform.TWITCH, key_ref="${TWITCH_KEY}")
        assert resolve_key(target, None, "default", env={"TWITCH_KEY": f" {LEAK_KEY}\n"}) == (
            LEAK_KEY
        )

    def test_an_unset_variable_names_the_target_the_variable_and_the_fix(self) -> None:
        target = Target("twitch", Platform.TWITCH, key_ref="${TWITCH_KEY}")
        with pytest.raises(MissingKey) as caught:
            resolve_key(target, None, "default", env={})
        assert str(caught.value) == (
            "target 'twitch': its stream key comes from the environment variable TWITCH_KEY, "
            "which is not set. Set it before starting Cascade, or store the key with "
            "`cascade key set twitch`"
        )

    def test_an_empty_variable_is_reported_as_empty(self) -> None:
        target = Target("twitch", Platform.TWITCH, key_ref="${TWITCH_KEY}")
        with pytest.raises(MissingKey, match="TWITCH_KEY, which is empty"):
            resolve_key(target, None, "default", env={"TWITCH_KEY": "  "})

    def test_a_keyring_reference_reads_the_store(self, tmp_path: Path) -> None:
        store = _vault(tmp_path)
        store.set("default", "youtube", LEAK_KEY)
        target = Target("youtube", Platform.YOUTUBE, key_ref="keyring")
        assert resolve_key(target, store, "default", env={}) == LEAK_KEY

    def test_a_keyring_reference_reads_the_real_secret_service(
        self, secret_service: SecretServiceSession, profile_name: str
    ) -> None:
        key = fresh_key("resolve")
        store = KeyringStore()
        store.set(profile_name, "kick", key)
        target = Target("kick", Platform.KICK, key_ref="keyring")
        assert resolve_key(target, store, profile_name, env={}) == key

    def test_a_key_missing_from_the_store_says_how_to_set_it(self, tmp_path: Path) -> None:
        target = Target("twitch", Platform.TWITCH, key_ref="keyring")
        with pytest.raises(MissingKey) as caught:
            resolve_key(target, _vault(tmp_path), "default", env={})
        assert str(caught.value) == (
            "target 'twitch': no stream key is stored for it in profile 'default'. "
            "Store it with `cascade key set twitch`"
        )

    def test_a_keyring_reference_without_a_store_is_a_clear_error(self) -> None:
        target = Target("twitch", Platform.TWITCH, key_ref="keyring")
        with pytest.raises(MissingKey, match="none is open"):
            resolve_key(target, None, "default", env={})

    def test_no_reference_uses_the_in_memory_key(self) -> None:
        key = fresh_key("memory")
        assert resolve_key(Target("demo", key=key), None, "default", env={}) == key
        assert REDACTOR.redact(key) == "[redacted]"

    def test_no_reference_and_no_key_means_no_key(self) -> None:
        target = Target("rec", Platform.RECORDING, url="/tmp/out.flv")
        assert resolve_key(target, None, "default", env={}) is None

    def test_a_reference_it_does_not_understand_is_refused_without_echoing_it(self) -> None:
        # A person pasted the key itself where the reference belongs.
        target = Target("twitch", Platform.TWITCH, key_ref=LEAK_KEY)
        with pytest.raises(ConfigError) as caught:
            resolve_key(target, None, "default", env={})
        assert "key reference is not understood" in str(caught.value)
        assert_no_leak(str(caught.value))


# --- no key in any message --------------------------------------------------------------------


class TestNoKeyInMessages:
    def test_no_error_or_description_here_contains_the_key(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        texts: list[str] = []

        def failure(action: Any) -> None:
            try:
                action()
            except CascadeError as exc:
                texts.append(str(exc))
            else:
                raise AssertionError("expected a CascadeError")

        monkeypatch.setenv("TWITCH_KEY", LEAK_KEY)
        vault = _vault(tmp_path)
        vault.set("default", "twitch", LEAK_KEY)
        texts.append(vault.describe())
        recorder = KeyringStore(cast(KeyringBackend, _Recorder()))
        recorder.set("default", "twitch", LEAK_KEY)
        texts.append(recorder.describe())

        failure(lambda: KeyringStore(cast(KeyringBackend, _Broken())).set("p", "t", LEAK_KEY))
        failure(lambda: KeyringStore(plaintext_backend()))
        windows = KeyringStore(_pretend("keyring.backends.Windows", "WinVaultKeyring"))
        failure(lambda: windows.set("p", "t", LEAK_KEY * 200))
        failure(lambda: resolve_key(Target("t", key_ref=LEAK_KEY), None, "p", env={}))
        failure(lambda: resolve_key(Target("t", key_ref="${NOPE}"), vault, "p", env={}))
        failure(lambda: resolve_key(Target("t", key_ref="keyring"), vault, "p", env={}))
        wrong = VaultStore(tmp_path / VAULT_FILENAME, "wrong passphrase", kdf=CHEAP)
        failure(lambda: wrong.get("default", "twitch"))
        failure(lambda: choose_store(tmp_path, env={VAULT_PASSPHRASE_ENV: "wrong passphrase"}))
        failure(lambda: choose_store(tmp_path / "empty", env={}, backend=fail.Keyring()))

        assert len(texts) == 11
        for text in texts:
            assert_no_leak(text)
