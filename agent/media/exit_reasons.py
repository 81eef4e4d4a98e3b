"""What an FFmpeg child's exit means: a reason a person can read, and whether retrying helps.

A failure is *permanent* when starting the same command again cannot work (a bad option, an
encoder this build lacks): the supervisor then goes to FATAL instead of looping.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a child ended, in one line, and whether a retry could help."""

    reason: str
    permanent: bool = False


# Messages FFmpeg prints when its command line itself is wrong: retrying cannot fix these.
_PERMANENT = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"Unrecognized option",
        r"Option .* not found",
        r"Error splitting the argument list",
        r"Unknown encoder",
        r"Unknown decoder",
        r"Encoder .* not found",
        r"Requested output format .* is not",
        r"Unable to choose an output format",
        r"Protocol not found",
        r"Invalid (?:argument|value) for option",
        r"Missing argument for option",
        r"Unable to find a suitable output format",
        r"At least one output file must be specified",
    )
)

# Lines that carry no information about the failure.
_NOISE = re.compile(r"^(?:Conversion failed!?|Exiting normally.*|\s*)$")
# Summaries FFmpeg prints after the line that says what was actually wrong.
_SUMMARY = re.compile(r"^Error splitting the argument list")
# FFmpeg's context tags in front of a line ("[out#0/flv @ 0x55d1c2a3e4c0] "): an address means
# nothing to a person reading why their target stopped.
_CONTEXT = re.compile(r"^(?:\[[^\]]*@ 0x[0-9a-fA-F]+\]\s*)+")


def meaningful_line(tail: Sequence[str]) -> str:
    """The last stderr line that says something (``Conversion failed!`` says nothing).

    A generic summary such as ``Error splitting the argument list: Option not found`` gives way
    to the specific line before it (``Unrecognized option 'x'.``). FFmpeg's context tags with
    their addresses are left out.
    """
    lines = [_CONTEXT.sub("", line.strip()) for line in tail]
    lines = [line for line in lines if not _NOISE.match(line)]
    for line in reversed(lines):
        if not _SUMMARY.match(line):
            return line
    return lines[-1] if lines else ""


def classify_exit(returncode: int | None, tail: Sequence[str]) -> Failure:
    """Turn an exit code and the last stderr lines into a :class:`Failure`."""
    detail = meaningful_line(tail)
    if returncode is None:
        code = "ended"
    elif returncode < 0:
        code = f"was killed by signal {-returncode}"
    else:
        code = f"exited with code {returncode}"
    reason = f"{code}: {detail}" if detail else code
    permanent = any(p.search(line) for line in tail[-10:] for p in _PERMANENT)
    return Failure(reason=reason, permanent=permanent)


# What a person can do about a target's failure, by what FFmpeg said.
_SUGGESTIONS = (
    (
        re.compile(r"Connection refused", re.IGNORECASE),
        "The server is not accepting connections: check the URL; Cascade keeps retrying",
    ),
    (
        re.compile(r"\b(?:401|403)\b|Unauthorized|Forbidden|authenticat", re.IGNORECASE),
        "The platform refused the stream: store the right key with 'cascade key set {id}'",
    ),
    (
        re.compile(r"resolve|Name or service not known|nodename nor servname", re.IGNORECASE),
        "The server's name could not be found: check the URL and the internet connection",
    ),
    (
        re.compile(r"timed out|Connection timed out", re.IGNORECASE),
        "The server did not answer: check the network; Cascade keeps retrying",
    ),
    (
        re.compile(r"Broken pipe|Connection reset|Input/output error|End of file", re.IGNORECASE),
        "The platform closed the connection: check the stream key and that the platform "
        "expects a stream now; Cascade keeps retrying",
    ),
    (
        re.compile(r"No such file or directory|Permission denied|No space left", re.IGNORECASE),
        "The recording cannot be written there: check the folder, its permissions and free space",
    ),
)


def suggestion(reason: str, target_id: str, *, permanent: bool = False) -> str:
    """What a person can do about a target that failed for ``reason``."""
    for pattern, text in _SUGGESTIONS:
        if pattern.search(reason):
            return text.format(id=target_id)
    if permanent:
        return (
            f"Retrying cannot help: fix target '{target_id}' (cascade target edit {target_id}), "
            f"then switch it off and on (cascade toggle {target_id})"
        )
    return "Cascade keeps retrying with growing delays; the log has the details"
