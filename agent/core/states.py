"""The states of a supervised process and the edges between them.

This module has no project imports beyond the error tree: it is the vocabulary the supervisor,
the API and the tray share. Every edge the supervisor may take is listed in :data:`EDGES`; any
other move raises :class:`~agent.errors.IllegalTransition`.

::

    STOPPED ──▶ STARTING ──▶ RUNNING ──▶ STOPPING ──▶ STOPPED
                  │   ▲         │  │
                  │   │         │  └──▶ EXITED (ended and not to be restarted)
                  ▼   │         ▼
                 FATAL ◀──── BACKOFF (waiting to retry)
"""

from __future__ import annotations

import enum

from agent.errors import IllegalTransition


class ProcessState(enum.Enum):
    """Where a supervised child is in its life."""

    STOPPED = "stopped"  # not running, nobody asked it to run
    STARTING = "starting"  # spawned, not yet proven to run stably
    RUNNING = "running"  # alive and making progress
    BACKOFF = "backoff"  # failed; waiting out a delay before the next start
    STOPPING = "stopping"  # asked to stop; waiting for it to exit
    EXITED = "exited"  # ended by itself and is not to be restarted
    FATAL = "fatal"  # cannot be started; needs a person (reason says why)

    @property
    def is_active(self) -> bool:
        """True while a child process exists or is about to (the supervisor is engaged)."""
        return self in _ACTIVE


_ACTIVE = frozenset({ProcessState.STARTING, ProcessState.RUNNING, ProcessState.BACKOFF})

S = ProcessState

#: Every legal edge. The comment names why the supervisor takes it.
EDGES: dict[ProcessState, frozenset[ProcessState]] = {
    S.STOPPED: frozenset({S.STARTING}),  # start requested
    S.STARTING: frozenset(
        {
            S.RUNNING,  # survived the start window / made progress
            S.BACKOFF,  # died during the start window
            S.STOPPING,  # stop requested while starting
            S.EXITED,  # a short job ended cleanly and is not to be restarted
            S.FATAL,  # could not spawn, or a permanent error
        }
    ),
    S.RUNNING: frozenset(
        {
            S.BACKOFF,  # died or stalled; will retry
            S.EXITED,  # ended normally and the policy says do not restart
            S.STOPPING,  # stop requested
            S.FATAL,  # died with an error that retrying cannot fix
        }
    ),
    S.BACKOFF: frozenset(
        {
            S.STARTING,  # delay elapsed
            S.STOPPED,  # stop requested while waiting
            S.FATAL,  # too many failed starts
        }
    ),
    S.STOPPING: frozenset({S.STOPPED}),  # child reaped
    S.EXITED: frozenset({S.STARTING, S.STOPPED}),  # started again / acknowledged
    S.FATAL: frozenset({S.STARTING, S.STOPPED}),  # a person fixed it and retried / cleared
}


def check_edge(name: str, old: ProcessState, new: ProcessState) -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` is a legal edge."""
    if new not in EDGES[old]:
        raise IllegalTransition(
            f"cannot go from {old.name} to {new.name}",
            subject=f"process '{name}'",
            hint="This is a bug in Cascade; please report it with the log file.",
        )
