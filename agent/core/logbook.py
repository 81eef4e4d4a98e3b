"""The recent log lines, kept in memory for the dashboard's Logs view.

Two streams feed one bounded ring buffer:

- FFmpeg's stderr lines, which every supervisor publishes as :class:`LogLine` events (source
  ``ingest``, ``encoder:<group>``, ``target:<id>``);
- the agent's own log records (``agent.*`` loggers, INFO and up), which :meth:`Logbook.capture`
  turns into :class:`LogLine` events with source ``agent``, so a WebSocket client sees them
  live like the rest.

Each line is kept as a :class:`LogEntry` with a plain level (``debug``, ``info``, ``warning``,
``error``) and a source a person can filter by (an encoder's lines are ``group:<id>``).
Every line is redacted when it is kept and again when it is read, so a secret registered
late is hidden too. At most :data:`CAPACITY` lines of at most :data:`MAX_LINE` characters
are kept; the oldest go first.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.core.events import Event, EventBus, LogLine
from agent.core.redact import REDACTOR, Redactor

CAPACITY = 2000  # lines kept; also the most one request can ask for
MAX_LINE = 1000  # characters kept of one line
LEVELS = ("debug", "info", "warning", "error")
AGENT_SOURCE = "agent"

# FFmpeg children run with -loglevel warning, so each line is a warning or an error; these
# words mark the errors.
_ERROR_WORDS = re.compile(
    r"error|failed|invalid|refused|denied|cannot|could not|unable|not found|broken pipe",
    re.IGNORECASE,
)
# Records of these loggers are never captured: the bus logs its own listeners' failures,
# which would come straight back here.
_NOT_CAPTURED = ("agent.core.events", "agent.core.logbook")


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One kept line. ``at`` is wall-clock seconds since the epoch."""

    at: float
    level: str
    source: str
    line: str

    def to_json(self, redactor: Redactor = REDACTOR) -> dict[str, Any]:
        """``{"time": ISO-8601, "level", "source", "line"}``, the line redacted."""
        return {
            "time": iso_time(self.at),
            "level": self.level,
            "source": self.source,
            "line": redactor.redact(self.line),
        }


def iso_time(at: float) -> str:
    """Wall-clock seconds as ISO-8601 in local time with its offset, to the millisecond."""
    return datetime.fromtimestamp(at, tz=UTC).astimezone().isoformat(timespec="milliseconds")


def entry_of(event: LogLine, redactor: Redactor = REDACTOR) -> LogEntry:
    """The entry a :class:`LogLine` event is kept as: plain level, filterable source."""
    line = redactor.redact(event.line)[:MAX_LINE]
    source = event.source
    if source.startswith("encoder:"):  # a re-encode group's FFmpeg: the group's lines
        source = "group:" + source.removeprefix("encoder:")
    level = event.level
    if level not in LEVELS:  # "ffmpeg": a stderr line at FFmpeg's warning level or above
        level = "error" if _ERROR_WORDS.search(line) else "warning"
    return LogEntry(at=event.at, level=level, source=source, line=line)


def matches(source: str, wanted: str | None) -> bool:
    """Whether a line's source is ``wanted``: the same, or under it when ``wanted`` ends with
    a colon (``target:`` is every target)."""
    if not wanted:
        return True
    if wanted.endswith(":"):
        return source.startswith(wanted)
    return source == wanted


class Logbook:
    """A bounded ring buffer of recent, redacted log lines (see the module docstring)."""

    def __init__(self, *, capacity: int = CAPACITY, redactor: Redactor = REDACTOR) -> None:
        self.capacity = capacity
        self._redactor = redactor
        self._lock = threading.Lock()
        self._entries: deque[LogEntry] = deque(maxlen=capacity)

    def on_event(self, event: Event) -> None:
        """A bus listener: keep every :class:`LogLine`."""
        if isinstance(event, LogLine):
            self.add(entry_of(event, self._redactor))

    def add(self, entry: LogEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def lines(self, source: str | None = None, limit: int = 500) -> list[LogEntry]:
        """The last ``limit`` lines whose source matches (see :func:`matches`), oldest first."""
        with self._lock:
            entries = list(self._entries)
        chosen = [e for e in entries if matches(e.source, source)]
        return chosen[-limit:] if limit > 0 else []

    def sources(self) -> list[str]:
        """Every source among the kept lines, sorted."""
        with self._lock:
            return sorted({e.source for e in self._entries})

    def to_json(self, entry: LogEntry) -> dict[str, Any]:
        return entry.to_json(self._redactor)

    def capture(self, bus: EventBus, logger: str = "agent") -> Callable[[], None]:
        """Publish ``logger``'s records (INFO and up) on ``bus`` as ``agent`` log lines;
        returns the function that stops it.

        Called on the event loop, which then publishes each record whichever thread logged
        it, and always after the code that logged it has returned: a listener that logs
        never sees its own record arrive in the middle of its work.
        """
        handler = _BusHandler(bus, asyncio.get_running_loop(), self._redactor)
        target = logging.getLogger(logger)
        target.addHandler(handler)

        def stop() -> None:
            target.removeHandler(handler)

        return stop


_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "error",
}


#: The agent's own lines about one child start with its name (``target:yt: STARTING ->
#: RUNNING``, ``ingest: ...``): they are filed under it, beside that child's FFmpeg lines.
_CHILD_PREFIX = re.compile(r"^(ingest|(?:target|group|encoder):[A-Za-z0-9_.-]+): ")


def _source_of(text: str) -> str:
    match = _CHILD_PREFIX.match(text)
    if match is None:
        return AGENT_SOURCE
    source = match.group(1)
    if source.startswith("encoder:"):
        return "group:" + source.removeprefix("encoder:")
    return source


class _BusHandler(logging.Handler):
    """Turns log records into :class:`LogLine` events on a bus."""

    def __init__(self, bus: EventBus, loop: asyncio.AbstractEventLoop, redactor: Redactor) -> None:
        super().__init__(level=logging.INFO)
        self._bus = bus
        self._loop = loop
        self._redactor = redactor

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_NOT_CAPTURED):
            return
        try:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                error = record.exc_info[1]
                text = f"{text}: {type(error).__name__}: {error}"
            level = _LEVEL_NAMES.get(record.levelno, "error" if record.levelno > 40 else "info")
            event = LogLine(
                source=_source_of(text),
                line=self._redactor.redact(text)[:MAX_LINE],
                level=level,
                at=record.created,
            )
            self._loop.call_soon_threadsafe(self._bus.publish, event)
        except RuntimeError:  # the loop has closed: the agent is gone, and so is its log
            pass
        except Exception:
            self.handleError(record)
