"""The relay's key source for stored profiles: env references and the real Secret Service."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from agent.core.model import Target
from agent.store.secrets import KeyringStore, MissingKey, key_source
from tests.keyring_session import SecretServiceSession


def test_an_env_reference_needs_no_secret_store(tmp_path: Path) -> None:
    keys = key_source(tmp_path, "default", env={"TWITCH_KEY": "live_env_123"})
    target = Target(id="twitch", key_ref="${TWITCH_KEY}")
    assert keys(target) == "live_env_123"
    assert not (tmp_path / "secrets.vault").exists()


def test_a_keyring_reference_reads_the_os_keyring(
    tmp_path: Path, secret_service: SecretServiceSession
) -> None:
    profile = f"p{secrets.token_hex(4)}"
    KeyringStore().set(profile, "youtube", "yt-key+/=?&%")
    keys = key_source(tmp_path, profile, env={})
    assert keys(Target(id="youtube", key_ref="keyring")) == "yt-key+/=?&%"


def test_a_missing_stored_key_names_the_target_and_the_command(
    tmp_path: Path, secret_service: SecretServiceSession
) -> None:
    keys = key_source(tmp_path, f"p{secrets.token_hex(4)}", env={})
    with pytest.raises(MissingKey) as err:
        keys(Target(id="kick", key_ref="keyring"))
    assert "target 'kick'" in str(err.value) and "cascade key set kick" in str(err.value)
