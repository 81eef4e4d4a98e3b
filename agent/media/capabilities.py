"""What an FFmpeg binary can do: protocols, muxers, encoders, and which encoders really work.

A hardware encoder that FFmpeg lists is only compiled in; it is *usable* only if a real
one-frame test encode succeeds on this machine (the driver, the GPU and the device node all
have to be there). The probe lists protocols, muxers and encoders, then test-encodes the
software encoders Cascade uses and every hardware family (NVENC, QSV, AMF, VAAPI,
VideoToolbox), four at a time. Results are cached as JSON per binary (path + size + mtime),
so a probe runs once per FFmpeg, not once per start.

The parsers are pure functions over FFmpeg's text so tests can feed them captured output.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from agent.errors import ProbeError
from agent.media.ffmpeg import FFmpegBinary, Runner, RunResult, run_command

log = logging.getLogger(__name__)

CACHE_FILE = "capabilities.json"
SCHEMA_VERSION = 1
MAX_CACHED_BINARIES = 8  # a person rarely switches between more FFmpeg builds than this
PROBE_CONCURRENCY = 4
LIST_TIMEOUT = 10.0  # seconds for -protocols / -muxers / -encoders
TEST_TIMEOUT = 15.0  # seconds for one test encode; GPU driver start-up can take a while
DEFAULT_VAAPI_DEVICE = "/dev/dri/renderD128"

NOT_IN_BUILD = "not in this FFmpeg build"
NOT_TESTED = "in this FFmpeg build but not test-encoded by the probe"
TEST_PASSED = "one-frame test encode succeeded"

Direction = Literal["input", "output", "both"]


class MediaKind(StrEnum):
    """What an encoder produces, from the first letter of FFmpeg's flags column."""

    VIDEO = "video"
    AUDIO = "audio"
    SUBTITLE = "subtitle"


_KIND_BY_FLAG = {"V": MediaKind.VIDEO, "A": MediaKind.AUDIO, "S": MediaKind.SUBTITLE}


@dataclass(frozen=True)
class EncoderInfo:
    """One line of ``ffmpeg -encoders``: ``codec`` is what it encodes (``h264``, ``aac``)."""

    name: str
    kind: MediaKind
    codec: str
    description: str


@dataclass(frozen=True)
class EncoderTest:
    """The verdict on one encoder; ``reason`` is one line a person can act on."""

    name: str
    usable: bool
    reason: str


@dataclass(frozen=True)
class EncoderFamily:
    """Encoders that share a driver (and so usually pass or fail their test encodes together)."""

    name: str
    encoders: tuple[str, ...]
    kind: MediaKind = MediaKind.VIDEO


SOFTWARE = EncoderFamily("software", ("libx264", "libx265"))
SOFTWARE_AUDIO = EncoderFamily("software audio", ("aac",), MediaKind.AUDIO)
NVENC = EncoderFamily("NVENC", ("h264_nvenc", "hevc_nvenc", "av1_nvenc"))
QSV = EncoderFamily("QSV", ("h264_qsv", "hevc_qsv", "av1_qsv"))
AMF = EncoderFamily("AMF", ("h264_amf", "hevc_amf", "av1_amf"))
VAAPI = EncoderFamily("VAAPI", ("h264_vaapi", "hevc_vaapi", "av1_vaapi"))
VIDEOTOOLBOX = EncoderFamily("VideoToolbox", ("h264_videotoolbox", "hevc_videotoolbox"))

#: Every family the probe tests, in the order ``describe`` lists them.
FAMILIES: tuple[EncoderFamily, ...] = (
    SOFTWARE,
    SOFTWARE_AUDIO,
    NVENC,
    QSV,
    AMF,
    VAAPI,
    VIDEOTOOLBOX,
)


# --- parsing FFmpeg's listings -------------------------------------------------------------

_SEPARATOR = re.compile(r"^\s*-+\s*$")
_ENCODER_LINE = re.compile(r"^\s*([VAS])([A-Z.]{5})\s+(\S+)\s*(.*)$")
_CODEC_SUFFIX = re.compile(r"\s*\(codec ([^)\s]+)\)\s*$")
_FORMAT_LINE = re.compile(r"^\s*([DEd.]{1,3})\s+(\S+)")
_PROTOCOL_NAME = re.compile(r"^[a-z0-9_]+$")


def _after_separator(text: str) -> Iterable[str]:
    """The lines after the ``---`` rule that ends the legend of FFmpeg's listings."""
    seen = False
    for line in text.splitlines():
        if seen:
            yield line
        elif _SEPARATOR.match(line):
            seen = True


def parse_protocols(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """``(input, output)`` protocol names from ``ffmpeg -hide_banner -protocols``."""
    found: dict[str, set[str]] = {"input": set(), "output": set()}
    section: str | None = None
    for line in text.splitlines():
        word = line.strip()
        if word.lower() in ("input:", "output:"):
            section = word[:-1].lower()
        elif section and line[:1].isspace() and _PROTOCOL_NAME.match(word):
            found[section].add(word)
    return frozenset(found["input"]), frozenset(found["output"])


def parse_muxers(text: str) -> frozenset[str]:
    """Muxer names from ``ffmpeg -hide_banner -muxers`` (old ``File formats:`` style too)."""
    names: set[str] = set()
    for line in _after_separator(text):
        match = _FORMAT_LINE.match(line)
        if match and "E" in match.group(1):
            names.update(name for name in match.group(2).split(",") if name)
    return frozenset(names)


def parse_encoders(text: str) -> dict[str, EncoderInfo]:
    """Encoders from ``ffmpeg -hide_banner -encoders``, keyed by name, in listing order."""
    encoders: dict[str, EncoderInfo] = {}
    for line in _after_separator(text):
        match = _ENCODER_LINE.match(line)
        if match is None:
            continue
        flag, _, name, description = match.groups()
        codec_match = _CODEC_SUFFIX.search(description)
        codec = codec_match.group(1) if codec_match else name
        if codec_match:
            description = description[: codec_match.start()]
        encoders[name] = EncoderInfo(name, _KIND_BY_FLAG[flag], codec, description.strip())
    return encoders


# --- test encodes ---------------------------------------------------------------------------

# Lines FFmpeg prints *because* an encoder failed; the cause is on another line.
_CONSEQUENCES = (
    "error while opening encoder",
    "error sending frames to consumers",
    "task finished with error code",
    "terminating thread with return code",
    "could not open encoder before eof",
    "nothing was written into output file",
    "conversion failed",
    "error initializing output stream",
    "error parsing global options",
    "device creation failed",
    "failed to set value",
    "error opening output file",
    "error selecting an encoder",
    "error while filtering",
    "error marking filters as finished",
    "failed to inject frame into filter network",
    "exiting with exit code",
)
_CONTEXT_PREFIX = re.compile(r"^(?:\[[^\]]*\]\s*)+")
_MAX_REASON = 200


def _clean(line: str) -> str:
    """A stderr line without FFmpeg's ``[h264_nvenc @ 0x…]`` context prefixes."""
    return _CONTEXT_PREFIX.sub("", line.strip()).strip()


def failure_reason(stderr: str, returncode: int | None) -> str:
    """One line saying why a test encode failed, picked from FFmpeg's stderr.

    FFmpeg prints the cause first ("Cannot load libcuda.so.1", "No VA display found …") and
    then a cascade of consequences ("Error while opening encoder", "Task finished …"), so the
    reason is the first line that is not a known consequence; failing that, the last line.
    """
    lines = [cleaned for line in stderr.splitlines() if (cleaned := _clean(line))]
    causes = [line for line in lines if not line.lower().startswith(_CONSEQUENCES)]
    if causes:
        chosen = causes[0]
    elif lines:
        chosen = lines[-1]
    elif returncode is not None and returncode < 0:
        chosen = f"ffmpeg was killed by signal {-returncode}"
    else:
        chosen = f"ffmpeg exited with code {returncode} and printed nothing"
    return chosen[:_MAX_REASON]


def find_vaapi_device() -> str:
    """The first DRM render node (``/dev/dri/renderD128`` on most Linux machines)."""
    nodes = sorted(Path("/dev/dri").glob("renderD*")) if sys.platform.startswith("linux") else []
    return str(nodes[0]) if nodes else DEFAULT_VAAPI_DEVICE


def encode_test_argv(
    ffmpeg: Path, encoder: str, kind: MediaKind, *, vaapi_device: str = DEFAULT_VAAPI_DEVICE
) -> list[str]:
    """The argument list that encodes one synthetic frame with ``encoder`` and discards it.

    The output is ``framecrc`` on stdout, one line per packet, so success is an encoded
    packet that arrived, not just an exit code.
    """
    head = [str(ffmpeg), "-hide_banner", "-nostdin", "-loglevel", "error"]
    tail = ["-f", "framecrc", "-"]
    if kind is MediaKind.AUDIO:
        source = ["-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo"]
        return [*head, *source, "-frames:a", "1", "-c:a", encoder, *tail]
    source = ["-f", "lavfi", "-i", "color=c=black:s=256x144:r=30"]
    if encoder in VAAPI.encoders:
        # VAAPI encodes from GPU surfaces: open the device and upload the frame to it.
        device = ["-vaapi_device", vaapi_device]
        upload = ["-vf", "format=nv12,hwupload"]
        return [*head, *device, *source, *upload, "-frames:v", "1", "-c:v", encoder, *tail]
    return [*head, *source, "-frames:v", "1", "-c:v", encoder, *tail]


def _packets(framecrc: str) -> int:
    return sum(1 for line in framecrc.splitlines() if line.strip() and not line.startswith("#"))


def _judge(name: str, result: RunResult) -> EncoderTest:
    if result.timed_out:
        return EncoderTest(name, False, f"test encode did not finish within {TEST_TIMEOUT:g} s")
    if result.returncode != 0:
        return EncoderTest(name, False, failure_reason(result.stderr, result.returncode))
    if _packets(result.stdout) == 0:
        return EncoderTest(name, False, "test encode exited cleanly but produced no packet")
    return EncoderTest(name, True, TEST_PASSED)


def _test_encoder(
    binary: FFmpegBinary,
    name: str,
    info: EncoderInfo | None,
    runner: Runner,
    vaapi_device: str,
) -> EncoderTest:
    if info is None:
        return EncoderTest(name, False, NOT_IN_BUILD)
    argv = encode_test_argv(binary.path, name, info.kind, vaapi_device=vaapi_device)
    try:
        result = runner(argv, TEST_TIMEOUT)
    except OSError as exc:
        return EncoderTest(name, False, f"ffmpeg could not be started ({exc.strerror or exc})")
    verdict = _judge(name, result)
    log.debug("test encode %s: %s (%.2f s)", name, verdict.reason, result.seconds)
    return verdict


# --- the capabilities record ------------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """What one FFmpeg binary offers on this machine, as probed at ``probed_at``.

    ``probed_at`` is wall-clock seconds since the epoch (it is shown and stored);
    ``probe_seconds`` is how long the probe took (monotonic clock).
    """

    ffmpeg_path: Path
    version: str
    cache_key: str
    probed_at: float
    probe_seconds: float
    input_protocols: frozenset[str]
    output_protocols: frozenset[str]
    muxers: frozenset[str]
    encoders: dict[str, EncoderInfo]
    tests: dict[str, EncoderTest]

    def has_protocol(self, name: str, direction: Direction = "both") -> bool:
        """Whether FFmpeg speaks protocol ``name`` (``rtmp``, ``rtmps``, ``srt``).

        The default asks for *both* directions: a target sends with it, and the ingest
        listens with it or pulls with it from a media server. Pass ``direction`` to ask
        for one.
        """
        inbound = name in self.input_protocols
        outbound = name in self.output_protocols
        if direction == "input":
            return inbound
        if direction == "output":
            return outbound
        return inbound and outbound

    def has_muxer(self, name: str) -> bool:
        """Whether FFmpeg can write container ``name`` (``flv``, ``mpegts``, ``mp4``)."""
        return name in self.muxers

    def usable_video_encoders(self) -> list[str]:
        """Video encoders whose test encode succeeded, software first, in probe order."""
        return [
            test.name
            for test in self.tests.values()
            if test.usable
            and (info := self.encoders.get(test.name)) is not None
            and info.kind is MediaKind.VIDEO
        ]

    def encoder_status(self, name: str) -> EncoderTest:
        """The verdict on ``name``. An encoder the probe did not test is never called usable."""
        if name in self.tests:
            return self.tests[name]
        if name not in self.encoders:
            return EncoderTest(name, False, NOT_IN_BUILD)
        return EncoderTest(name, False, NOT_TESTED)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_json` reads it back."""
        return {
            "ffmpeg_path": str(self.ffmpeg_path),
            "version": self.version,
            "cache_key": self.cache_key,
            "probed_at": self.probed_at,
            "probe_seconds": self.probe_seconds,
            "input_protocols": sorted(self.input_protocols),
            "output_protocols": sorted(self.output_protocols),
            "muxers": sorted(self.muxers),
            "encoders": {
                name: [info.kind.value, info.codec, info.description]
                for name, info in self.encoders.items()
            },
            "tests": {name: [test.usable, test.reason] for name, test in self.tests.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Capabilities:
        """Rebuild from :meth:`to_json` output; raises ``ValueError``/``TypeError``/``KeyError``."""
        encoders = {
            _str(name): EncoderInfo(_str(name), MediaKind(kind), _str(codec), _str(description))
            for name, (kind, codec, description) in data["encoders"].items()
        }
        tests = {
            _str(name): EncoderTest(_str(name), _bool(usable), _str(reason))
            for name, (usable, reason) in data["tests"].items()
        }
        return cls(
            ffmpeg_path=Path(_str(data["ffmpeg_path"])),
            version=_str(data["version"]),
            cache_key=_str(data["cache_key"]),
            probed_at=float(data["probed_at"]),
            probe_seconds=float(data["probe_seconds"]),
            input_protocols=_names(data["input_protocols"]),
            output_protocols=_names(data["output_protocols"]),
            muxers=_names(data["muxers"]),
            encoders=encoders,
            tests=tests,
        )


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true/false, got {type(value).__name__}")
    return value


def _names(value: object) -> frozenset[str]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return frozenset(_str(item) for item in value)


# --- probing ----------------------------------------------------------------------------------


def _listing(binary: FFmpegBinary, flag: str, runner: Runner) -> str:
    """The stdout of ``ffmpeg -hide_banner <flag>``; :class:`ProbeError` if it fails."""
    subject = f"FFmpeg at {binary.path}"
    hint = "Check that this ffmpeg still runs, or choose another one with CASCADE_FFMPEG"
    try:
        result = runner([str(binary.path), "-hide_banner", flag], LIST_TIMEOUT)
    except OSError as exc:
        raise ProbeError(f"could not run {flag} ({exc})", subject=subject, hint=hint) from exc
    if result.timed_out:
        raise ProbeError(
            f"{flag} did not answer within {LIST_TIMEOUT:g} s", subject=subject, hint=hint
        )
    if result.returncode != 0:
        why = failure_reason(result.stderr, result.returncode)
        raise ProbeError(f"{flag} failed: {why}", subject=subject, hint=hint)
    return result.stdout


def _probe(binary: FFmpegBinary, runner: Runner) -> Capabilities:
    started_wall = time.time()
    started = time.monotonic()
    vaapi_device = find_vaapi_device()
    with ThreadPoolExecutor(max_workers=PROBE_CONCURRENCY, thread_name_prefix="probe") as pool:
        flags = ("-protocols", "-muxers", "-encoders")
        listings = pool.map(lambda flag: _listing(binary, flag, runner), flags)
        texts = dict(zip(flags, listings, strict=True))
        encoders = parse_encoders(texts["-encoders"])
        if not encoders:
            raise ProbeError(
                "-encoders listed no encoders",
                subject=f"FFmpeg at {binary.path}",
                hint="Choose a complete FFmpeg build with CASCADE_FFMPEG",
            )
        names = [name for family in FAMILIES for name in family.encoders]
        verdicts = pool.map(
            lambda name: _test_encoder(binary, name, encoders.get(name), runner, vaapi_device),
            names,
        )
        tests = {verdict.name: verdict for verdict in verdicts}
    input_protocols, output_protocols = parse_protocols(texts["-protocols"])
    caps = Capabilities(
        ffmpeg_path=binary.path,
        version=binary.version,
        cache_key=binary.cache_key,
        probed_at=started_wall,
        probe_seconds=time.monotonic() - started,
        input_protocols=input_protocols,
        output_protocols=output_protocols,
        muxers=parse_muxers(texts["-muxers"]),
        encoders=encoders,
        tests=tests,
    )
    log.info(
        "probed FFmpeg %s in %.2f s; usable video encoders: %s",
        binary.version,
        caps.probe_seconds,
        ", ".join(caps.usable_video_encoders()) or "none",
    )
    return caps


# --- the cache file -------------------------------------------------------------------------


def _read_entries(path: Path) -> dict[str, Any]:
    """The cache file's entries; an unreadable, corrupt or outdated file counts as empty."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable capability cache %s: %s", path, exc)
        return {}
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION:
        log.warning("ignoring capability cache %s: not schema %d", path, SCHEMA_VERSION)
        return {}
    entries = data.get("entries")
    return entries if isinstance(entries, dict) else {}


def _cached(path: Path, key: str) -> Capabilities | None:
    entry = _read_entries(path).get(key)
    if not isinstance(entry, dict):
        return None
    try:
        caps = Capabilities.from_json(entry)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        log.warning("ignoring damaged capability cache entry in %s: %s", path, exc)
        return None
    return caps if caps.cache_key == key else None


def _probed_at(entry: Mapping[str, Any]) -> float:
    value = entry.get("probed_at")
    return float(value) if isinstance(value, int | float) else 0.0


def _store(path: Path, caps: Capabilities) -> None:
    """Add ``caps`` to the cache file atomically; a failure to write only costs a re-probe."""
    entries = {key: entry for key, entry in _read_entries(path).items() if isinstance(entry, dict)}
    entries[caps.cache_key] = caps.to_json()
    newest = sorted(entries.items(), key=lambda item: _probed_at(item[1]), reverse=True)
    newest = newest[:MAX_CACHED_BINARIES]
    document = {"schema": SCHEMA_VERSION, "entries": dict(newest)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=1)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.warning("could not write capability cache %s: %s", path, exc)


def probe_capabilities(
    binary: FFmpegBinary,
    *,
    cache_dir: Path,
    refresh: bool = False,
    runner: Runner = run_command,
) -> Capabilities:
    """The capabilities of ``binary``, from ``cache_dir/capabilities.json`` when it is current.

    The cache entry is keyed by ``binary.cache_key``, so a replaced or different binary is
    probed afresh; ``refresh=True`` probes even when an entry exists. ``runner`` runs each
    FFmpeg command (tests pass a recorder around :func:`run_command`). Raises
    :class:`ProbeError` if FFmpeg cannot list what it supports.
    """
    path = cache_dir / CACHE_FILE
    if not refresh:
        cached = _cached(path, binary.cache_key)
        if cached is not None:
            log.debug("capabilities of %s from cache %s", binary.path, path)
            return cached
    caps = _probe(binary, runner)
    _store(path, caps)
    return caps


async def probe_capabilities_async(
    binary: FFmpegBinary,
    *,
    cache_dir: Path,
    refresh: bool = False,
    runner: Runner = run_command,
) -> Capabilities:
    """:func:`probe_capabilities` in a worker thread, so the event loop keeps running."""
    return await asyncio.to_thread(
        probe_capabilities, binary, cache_dir=cache_dir, refresh=refresh, runner=runner
    )


def describe(caps: Capabilities) -> list[str]:
    """Lines for ``cascade doctor``: the binary, the streaming protocols, every tested encoder."""
    protocols = ", ".join(
        f"{name} {'yes' if caps.has_protocol(name) else 'no'}" for name in ("rtmp", "rtmps", "srt")
    )
    lines = [f"FFmpeg {caps.version} at {caps.ffmpeg_path}", f"protocols: {protocols}"]
    for test in caps.tests.values():
        state = "usable" if test.usable else f"unavailable — {test.reason}"
        lines.append(f"{test.name}: {state}")
    return lines
