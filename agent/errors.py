"""Cascade's one exception tree.

Every error a person can meet says what happened, to what (a group, a target, the ingest,
the FFmpeg binary) and what to do next. Foreign errors are translated at the boundary with
``raise SomeCascadeError(...) from exc``.

::

    CascadeError                  root; ``str(err)`` is the full sentence a person reads
    ├── FFmpegError               the FFmpeg binary is missing, broken or too old
    ├── ProbeError                a capability probe could not run
    ├── SupervisorError           misuse of a supervisor (start after close, ...)
    │   └── IllegalTransition     a process state change that the state machine forbids
    ├── ConfigError               a setting or command-line value is invalid
    ├── Conflict                  an action the current state refuses (a live group's
    │                             encoding edited, a profile switched while live)
    └── ContainmentError          a child could not be tied to the agent's lifetime
                                  (agent.platform.containment)
"""

from __future__ import annotations


class CascadeError(Exception):
    """Root of every error Cascade raises on purpose.

    ``what`` says what happened, ``subject`` names the thing at fault (``target 'youtube'``),
    ``hint`` says what the person can do about it. ``str()`` joins them into one sentence.
    """

    def __init__(self, what: str, *, subject: str | None = None, hint: str | None = None) -> None:
        self.what = what
        self.subject = subject
        self.hint = hint
        super().__init__(self._sentence())

    def _sentence(self) -> str:
        text = f"{self.subject}: {self.what}" if self.subject else self.what
        if self.hint:
            text = f"{text.rstrip('.')}. {self.hint}"
        return text


class FFmpegError(CascadeError):
    """Raised when no usable FFmpeg binary can be found: missing, not runnable or too old."""


class ProbeError(CascadeError):
    """Raised when the capability probe cannot run the binary at all."""


class SupervisorError(CascadeError):
    """Raised when a supervisor is used in a way its lifecycle does not allow."""


class IllegalTransition(SupervisorError):
    """Raised when code asks a process state machine for an edge it does not have."""


class ConfigError(CascadeError):
    """Raised when a setting or a command-line value is invalid."""


class Conflict(CascadeError):
    """Raised when an action cannot happen in the current state; nothing was changed."""
