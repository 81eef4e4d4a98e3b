"""The redactor: registered secrets and their URL forms, and patterns for unknown ones."""

from __future__ import annotations

from agent.core.redact import MASK, Redactor


def test_a_secret_is_hidden_plain_and_url_encoded() -> None:
    redactor = Redactor(["ab+c/d?e"])
    text = redactor.redact("key ab+c/d?e or ab%2Bc%2Fd%3Fe or ab%2Bc/d%3Fe")
    assert "ab+c" not in text and "ab%2B" not in text
    assert text.count(MASK) == 3


def test_a_pattern_hides_only_its_group() -> None:
    redactor = Redactor()
    redactor.add_pattern(r"Unexpected stream (.*?), expecting")
    redactor.add_pattern(r"Unexpected stream (.*?), expecting")  # registering twice is harmless
    line = "[rtmp @ 0x5] Unexpected stream live_abc+/=, expecting obs"
    assert redactor.redact(line) == f"[rtmp @ 0x5] Unexpected stream {MASK}, expecting obs"


def test_short_strings_are_not_treated_as_secrets() -> None:
    redactor = Redactor(["ab"])
    assert redactor.redact("table tab") == "table tab"
