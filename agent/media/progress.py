"""Parse FFmpeg's ``-progress`` output into typed :class:`Progress` records.

FFmpeg started with ``-progress pipe:2 -stats_period 0.5`` writes a block of ``key=value``
lines to stderr every half second, mixed with its ordinary log lines. Every block ends with
``progress=continue``, and the last one with ``progress=end``. What FFmpeg 9 prints:

- ``frame``, ``fps`` and ``stream_N_M_q`` are missing when the output has no video stream
  (an audio-only copy), so a block can lack any key;
- at the start, ``bitrate``, ``out_time_us`` and ``speed`` are ``N/A`` while ``total_size=0``;
- with the ``tee`` muxer, ``bitrate`` and ``total_size`` are ``N/A`` for the whole run;
- ``bitrate`` and ``speed`` are padded (``bitrate=  76.3kbits/s``, ``speed= 0.5x``);
- with ``-stats`` on, the human status line ends in ``\\r`` rather than a newline, so a line
  split on ``\\n`` can read ``frame=   77 fps= 38 ... speed=1.26x    \\rframe=77``.

The supervisor sends every stderr line through :meth:`ProgressParser.is_progress_line`:
progress lines go to :meth:`ProgressParser.feed_line`, the rest to the log ring buffer.
:func:`advanced` tells the stall detector whether output moved between two records.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["Progress", "ProgressParser", "advanced"]

# The strict shape for keys we do not know; known keys may also carry FFmpeg's padding.
_UNKNOWN_KEY_LINE = re.compile(r"[a-z0-9_]+=\S*")
_KEY_VALUE = re.compile(r"([a-z0-9_]+)=(.*)")
_KNOWN_KEYS = frozenset(
    {
        "frame",
        "fps",
        "bitrate",
        "total_size",
        "out_time_us",
        "out_time_ms",
        "out_time",
        "dup_frames",
        "drop_frames",
        "speed",
        "progress",
    }
)
_UNSIGNED_INT = re.compile(r"\+?\d+")
_SIGNED_INT = re.compile(r"[-+]?\d+")
# Python's float() also takes "nan", "inf" and "1_0"; FFmpeg prints none of those.
_FLOAT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True, slots=True)
class Progress:
    """One completed ``-progress`` block.

    A field FFmpeg printed as ``N/A``, left out, or garbled is ``None``; ``dup_frames`` and
    ``drop_frames`` are ``0`` then. ``bitrate_kbps`` is FFmpeg's figure when it gave one,
    otherwise our estimate (``bitrate_derived`` is then ``True``) or ``None``.
    """

    frame: int | None
    """Frames written so far; ``None`` for an output without video."""
    fps: float | None
    """Frames per second as FFmpeg averages them."""
    bitrate_kbps: float | None
    """Output bitrate in kbit/s."""
    total_size: int | None
    """Bytes written to the output so far."""
    out_time_us: int | None
    """Output timestamp in microseconds (may be slightly negative at the start)."""
    dup_frames: int
    """Frames duplicated to keep the frame rate."""
    drop_frames: int
    """Frames dropped to keep the frame rate."""
    speed: float | None
    """Processing speed relative to real time (``1.0`` is real time)."""
    ended: bool
    """``True`` for the last block, the one ending in ``progress=end``."""
    at: float
    """Monotonic time at which the block completed (the ``now`` given with ``progress=``)."""
    bitrate_derived: bool
    """``True`` when ``bitrate_kbps`` was computed here because FFmpeg gave none."""


class ProgressParser:
    """Turn stderr lines into :class:`Progress` records, one per ``progress=`` line.

    Use one parser per FFmpeg process. It never raises on what FFmpeg (or anything else)
    writes: log lines and unknown keys are ignored, malformed values become ``None``.
    """

    def __init__(self) -> None:
        self._pending: dict[str, str] = {}
        # The last completed block's size and time, for the wall-clock bitrate estimate.
        self._last_size: int | None = None
        self._last_at: float | None = None

    @staticmethod
    def is_progress_line(line: str) -> bool:
        """Say whether ``line`` is a ``key=value`` progress line rather than a log line.

        Known keys may have padded values (``bitrate=  76.3kbits/s``); any other key must
        match ``^[a-z0-9_]+=\\S*$``. The human ``-stats`` line (``frame=  120 fps= 30 ...``)
        has spaces inside its value and is refused. When a line holds ``\\r``, only the text
        after the last one counts, as on a terminal.
        """
        text = _visible_text(line)
        match = _KEY_VALUE.fullmatch(text)
        if match is None:
            return False
        key, value = match.groups()
        if key in _KNOWN_KEYS:
            return _no_inner_space(value.strip())
        return _UNKNOWN_KEY_LINE.fullmatch(text) is not None

    def feed_line(self, line: str, now: float) -> Progress | None:
        """Take one decoded stderr line; return a :class:`Progress` when it ends a block.

        ``now`` is the monotonic time the line was read. Lines that are not progress lines
        are ignored, so passing every stderr line is harmless. A ``progress=`` line completes
        the block (``progress=end`` marks it ``ended``) and the next line starts a fresh one.
        """
        if not self.is_progress_line(line):
            return None
        key, _, value = _visible_text(line).partition("=")
        value = value.strip()
        if key != "progress":
            self._pending[key] = value
            return None
        fields, self._pending = self._pending, {}
        return self._complete(fields, ended=value == "end", now=now)

    def _complete(self, fields: dict[str, str], *, ended: bool, now: float) -> Progress:
        total_size = _parse_unsigned(fields.get("total_size"))
        out_time_us = _parse_signed(fields.get("out_time_us"))
        bitrate = _parse_bitrate(fields.get("bitrate"))
        derived = False
        if bitrate is None:
            bitrate = self._derive_bitrate(total_size, out_time_us, now)
            derived = bitrate is not None
        self._last_size, self._last_at = total_size, now
        return Progress(
            frame=_parse_unsigned(fields.get("frame")),
            fps=_parse_float(fields.get("fps")),
            bitrate_kbps=bitrate,
            total_size=total_size,
            out_time_us=out_time_us,
            dup_frames=_parse_unsigned(fields.get("dup_frames")) or 0,
            drop_frames=_parse_unsigned(fields.get("drop_frames")) or 0,
            speed=_parse_float(fields.get("speed"), suffix="x"),
            ended=ended,
            at=now,
            bitrate_derived=derived,
        )

    def _derive_bitrate(
        self, total_size: int | None, out_time_us: int | None, now: float
    ) -> float | None:
        if total_size is None:
            return None
        if out_time_us is not None and out_time_us > 0:
            # bytes * 8 / µs = Mbit/s; * 1000 gives kbit/s, the same sum FFmpeg does.
            return total_size * 8 / out_time_us * 1000
        if self._last_size is None or self._last_at is None:
            return None
        seconds = now - self._last_at
        grown = total_size - self._last_size
        if seconds <= 0 or grown < 0:
            return None
        return grown * 8 / seconds / 1000


def advanced(prev: Progress | None, cur: Progress) -> bool:
    """Say whether output moved from ``prev`` to ``cur``.

    It moved when ``frame``, ``total_size`` or ``out_time_us`` grew. A value that is unknown
    in ``prev`` (or no ``prev`` at all) counts as zero; a value unknown in ``cur`` cannot
    show movement. So FFmpeg's opening ``frame=0`` / ``total_size=0`` blocks do not count.
    """
    pairs = (
        (None if prev is None else prev.frame, cur.frame),
        (None if prev is None else prev.total_size, cur.total_size),
        (None if prev is None else prev.out_time_us, cur.out_time_us),
    )
    return any(now is not None and now > (before or 0) for before, now in pairs)


def _visible_text(line: str) -> str:
    # A trailing "\r\n" is a line end; a "\r" inside means the human -stats line was
    # overwritten on the terminal, and the text after it is the real line.
    return line.rstrip("\r\n").rpartition("\r")[2]


def _no_inner_space(value: str) -> bool:
    return not any(char.isspace() for char in value)


def _parse_unsigned(value: str | None) -> int | None:
    if value is None or _UNSIGNED_INT.fullmatch(value) is None:
        return None
    return int(value)


def _parse_signed(value: str | None) -> int | None:
    if value is None or _SIGNED_INT.fullmatch(value) is None:
        return None
    return int(value)


def _parse_float(value: str | None, *, suffix: str = "") -> float | None:
    if value is None:
        return None
    if suffix and value.endswith(suffix):
        value = value[: -len(suffix)].rstrip()
    if _FLOAT.fullmatch(value) is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _parse_bitrate(value: str | None) -> float | None:
    return _parse_float(value, suffix="kbits/s")
