"""Redaction of secrets (stream keys, tokens) from any text that leaves the process.

Every log line, FFmpeg command line, stderr line and error message passes through a
:class:`Redactor` before a person or a file sees it. A secret is registered once, when it is
resolved, and is then replaced in its plain form and in the encoded forms it takes inside
URLs and argument lists.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "[redacted]"
_MIN_LEN = 3  # shorter strings would mangle ordinary words; no real key is that short


class Redactor:
    """A thread-safe set of secrets and the function that hides them in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._forms: tuple[str, ...] = ()
        self._patterns: tuple[re.Pattern[str], ...] = ()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Register a secret; its URL-encoded forms are hidden too."""
        if len(secret) < _MIN_LEN:
            return
        forms = {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}
        with self._lock:
            merged = set(self._forms) | forms
            # Longest first, so a secret that contains another is hidden whole.
            self._forms = tuple(sorted(merged, key=len, reverse=True))

    def add_pattern(self, pattern: str) -> None:
        """Hide what a pattern's first group matches: secrets not known in advance, such as
        the key a stranger's publisher used, which FFmpeg echoes in its warning."""
        compiled = re.compile(pattern)
        with self._lock:
            if compiled not in self._patterns:
                self._patterns = (*self._patterns, compiled)

    def redact(self, text: str) -> str:
        """Return ``text`` with every registered secret replaced by a mask."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        for pattern in self._patterns:
            text = pattern.sub(_mask_group, text)
        return text

    def redact_argv(self, argv: Iterable[str]) -> list[str]:
        """Redact every item of an argument list (for logging a command)."""
        return [self.redact(arg) for arg in argv]


def _mask_group(match: re.Match[str]) -> str:
    start, end = match.span(1)
    whole = match.group(0)
    offset = match.start(0)
    return whole[: start - offset] + MASK + whole[end - offset :]


#: The process-wide redactor that stores register keys with and loggers read from.
REDACTOR = Redactor()
