"""Platform presets, and turning a target plus its stream key into a :class:`Destination`.

A preset knows a platform's ingest URLs, which URL schemes it accepts and where a person finds
the stream key. :func:`resolve_destination` applies it to a :class:`~agent.core.model.Target`:

- the URL is the target's own ``url`` if set, else the preset's primary; ``backup=True`` picks
  the preset's backup ingest (YouTube) instead;
- the *app* is everything after ``host[:port]/`` — ``live2``, ``app``, ``rtmp``,
  ``live2?backup=1``; for a custom server all of it (``rtmp://h/a/b`` → ``a/b``);
- the key travels separately (``-rtmp_playpath``, or SRT's ``streamid``), never inside the URL.

Pasted URLs that already hold the key (decided here, once):

- a key given separately always wins; a key found in the URL is then dropped, never appended
  twice;
- on a platform preset (YouTube, Twitch, Kick, Facebook) the app is one path segment, so
  ``rtmp://live.twitch.tv/app/live_123`` is split into app ``app`` and key ``live_123``;
- a custom URL with no separate key is used exactly as given (no ``-rtmp_playpath``): Cascade
  cannot tell where a custom server's app ends and its key begins.

Errors are :class:`~agent.errors.ConfigError` naming the target; they never quote the URL or
the key, since either may hold the secret.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from agent.core.model import Platform, Target
from agent.errors import ConfigError
from agent.media.args import RECORDING_FORMATS, Destination, recording_path

RTMP_SCHEMES = frozenset({"rtmp", "rtmps"})


@dataclass(frozen=True)
class PlatformPreset:
    """What Cascade knows about one platform: its ingest URLs, schemes and where the key is."""

    platform: Platform
    title: str
    primary_url: str  # "" when there is no default (custom servers, recordings)
    backup_url: str | None
    key_required: bool
    schemes: frozenset[str]  # URL schemes a target of this platform may use; "file" = a path
    key_help: str  # one sentence: where a person finds the stream key


PRESETS: dict[Platform, PlatformPreset] = {
    Platform.YOUTUBE: PlatformPreset(
        platform=Platform.YOUTUBE,
        title="YouTube",
        primary_url="rtmps://a.rtmps.youtube.com:443/live2",
        backup_url="rtmps://b.rtmps.youtube.com:443/live2?backup=1",
        key_required=True,
        schemes=RTMP_SCHEMES,
        key_help="YouTube Studio shows it under Create → Go live → Stream → Stream key.",
    ),
    Platform.TWITCH: PlatformPreset(
        platform=Platform.TWITCH,
        title="Twitch",
        primary_url="rtmps://live.twitch.tv:443/app",
        backup_url=None,
        key_required=True,
        schemes=RTMP_SCHEMES,
        key_help="Twitch's Creator Dashboard shows it under Settings → Stream → Stream key.",
    ),
    Platform.KICK: PlatformPreset(
        platform=Platform.KICK,
        title="Kick",
        primary_url="rtmps://fa723fc1b171.global-contribute.live-video.net:443/app",
        backup_url=None,
        key_required=True,
        schemes=frozenset({"rtmps"}),
        key_help=(
            "Kick's Creator Dashboard shows it under Settings → Stream URL & Key; if Kick "
            "gives you another Stream URL, set that as the target's URL."
        ),
    ),
    Platform.FACEBOOK: PlatformPreset(
        platform=Platform.FACEBOOK,
        title="Facebook Live",
        primary_url="rtmps://live-api-s.facebook.com:443/rtmp",
        backup_url=None,
        key_required=True,
        schemes=frozenset({"rtmps"}),
        key_help="Facebook Live Producer shows it under Streaming software → Stream key.",
    ),
    Platform.CUSTOM: PlatformPreset(
        platform=Platform.CUSTOM,
        title="Custom server",
        primary_url="",
        backup_url=None,
        key_required=False,
        schemes=frozenset({"rtmp", "rtmps", "srt"}),
        key_help=(
            "Use the stream key (or stream name) your server expects, or leave it empty if "
            "the URL already ends with it."
        ),
    ),
    Platform.RECORDING: PlatformPreset(
        platform=Platform.RECORDING,
        title="Recording",
        primary_url="",
        backup_url=None,
        key_required=False,
        schemes=frozenset({"file"}),
        key_help="Recordings need no stream key.",
    ),
}

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)$", re.DOTALL)
_UNPRINTABLE = re.compile(r"[\s\x00-\x1f\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class _Url:
    scheme: str  # lower-case
    netloc: str  # host[:port] as given
    rest: str  # everything after host[:port], without the leading "/"

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.netloc}"


def preset_for(target: Target) -> PlatformPreset:
    """The preset of the target's platform, or :class:`ConfigError` for an unknown platform."""
    preset = PRESETS.get(target.platform)
    if preset is None:
        raise ConfigError(
            f"the platform '{target.platform}' is not one Cascade knows",
            subject=f"target '{target.id}'",
            hint=f"Use one of: {', '.join(p.value for p in PRESETS)}",
        )
    return preset


def resolve_destination(
    target: Target,
    key: str | None,
    *,
    now: datetime | None = None,
    require_key: bool = True,
) -> Destination:
    """Where ``target`` sends, with ``key`` (its resolved stream key; None or "" for none).

    ``now`` names a recording's file (default: the current local time). With
    ``require_key=False`` a missing key is not an error — validation checks a target's URL
    before any key is looked up; a missing key is reported when the target starts.

    Raises :class:`ConfigError` naming the target when the platform is unknown, the URL is
    malformed or of a scheme the platform does not take, the platform has no backup ingest but
    one was asked for, a required key is missing, or the key holds a line break.
    """
    subject = f"target '{target.id}'"
    preset = preset_for(target)
    key = key or None
    if key is not None and _CONTROL.search(key):
        raise ConfigError(
            "the stream key contains a line break or another control character",
            subject=subject,
            hint="Set its stream key again, pasted without the line break",
        )
    if preset.platform is Platform.RECORDING:
        return Destination("file", _recording_file(target.url, subject, now or datetime.now()))
    url = _parse(_chosen_url(target, preset, subject), preset.schemes, preset.title, subject)
    if url.scheme == "srt":
        return _srt(url, key)
    app_path = url.rest.rstrip("/")
    if preset.platform is Platform.CUSTOM:
        app, embedded = app_path, ""
    else:
        # Presets' apps are one segment; anything after it is a key pasted into the URL.
        app, _, embedded = app_path.partition("/")
    if not app or app.startswith("?"):
        raise ConfigError(
            "the URL has no application path after the server name",
            subject=subject,
            hint="Use the full server URL, e.g. rtmp://example.com/live",
        )
    base = f"{url.base}/{app}"
    if key is not None:
        return Destination("rtmp", base, app, key)
    if embedded:
        return Destination("rtmp", base, app, embedded)
    if preset.key_required and require_key:
        raise ConfigError(
            "no stream key is set",
            subject=subject,
            hint=f"Set its stream key. {preset.key_help}",
        )
    return Destination("rtmp", f"{url.base}/{url.rest}", app, None)


def _chosen_url(target: Target, preset: PlatformPreset, subject: str) -> str:
    if target.backup:
        if preset.backup_url is None:
            raise ConfigError(
                f"{preset.title} has no backup ingest",
                subject=subject,
                hint="Turn off its backup setting, or set the backup server's URL as its URL",
            )
        return preset.backup_url
    url = target.url or preset.primary_url
    if not url:
        raise ConfigError(
            "no server URL is set",
            subject=subject,
            hint="Set its URL, e.g. rtmp://example.com/live or srt://example.com:9000",
        )
    return url


def check_url(text: str, schemes: frozenset[str], *, title: str, subject: str) -> None:
    """Raise :class:`ConfigError` if ``text`` is not a URL FFmpeg can use with these schemes.

    The rules :func:`resolve_destination` applies (no spaces, a scheme from ``schemes``, a
    host, a valid port, a port for SRT), for URLs that are not a target's, such as a pull
    ingest's. ``title`` names who takes the URL in messages ("the ingest").
    """
    _parse(text, schemes, title, subject)


def _parse(text: str, schemes: frozenset[str], title: str, subject: str) -> _Url:
    """Split a URL into scheme, host[:port] and the rest, checking what FFmpeg would trip on."""
    allowed = ", ".join(sorted(schemes))
    starts = " or ".join(f"{scheme}://" for scheme in sorted(schemes))
    if _UNPRINTABLE.search(text):
        raise ConfigError(
            "the URL contains a space or a control character",
            subject=subject,
            hint="Paste the server URL again; the stream key belongs in its key setting",
        )
    match = _URL.match(text)
    if match is None:
        raise ConfigError(
            "the URL is not of the form scheme://host/app",
            subject=subject,
            hint=f"{title[:1].upper()}{title[1:]} takes {allowed} URLs such as rtmp://example.com/live",
        )
    scheme, netloc, rest = match.group(1).lower(), match.group(2), match.group(3)
    if scheme not in schemes:
        raise ConfigError(
            f"the URL's scheme '{scheme}' is not one {title} accepts",
            subject=subject,
            hint=f"Use a URL starting with {starts}",
        )
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ConfigError(
            "the URL's host or port is not valid",
            subject=subject,
            hint="Use host:port with a port from 1 to 65535, e.g. rtmp://example.com:1935/live",
        ) from exc
    if not host:
        raise ConfigError(
            "the URL has no host name",
            subject=subject,
            hint="Use the full server URL, e.g. rtmp://example.com/live",
        )
    if port == 0:
        raise ConfigError(
            "the URL's port is 0",
            subject=subject,
            hint="Use a port from 1 to 65535",
        )
    if scheme == "srt" and port is None:
        raise ConfigError(
            "an SRT URL needs a port",
            subject=subject,
            hint="Use srt://host:port, e.g. srt://example.com:9000",
        )
    return _Url(scheme, netloc, rest[1:] if rest.startswith("/") else rest)


def _srt(url: _Url, key: str | None) -> Destination:
    separator = "/" if url.rest and not url.rest.startswith("?") else ""
    text = f"{url.base}{separator}{url.rest}"
    if key is None:
        return Destination("srt", text)
    # A separate key wins: drop any streamid already in the URL; push_argv adds the key's.
    base, _, query = text.partition("?")
    kept = [item for item in query.split("&") if item and item.partition("=")[0] != "streamid"]
    return Destination("srt", f"{base}?{'&'.join(kept)}" if kept else base, None, key)


def _recording_file(template: str, subject: str, now: datetime) -> str:
    """The recording's file for a target URL that is a folder or file path."""
    kinds = ", ".join(RECORDING_FORMATS)
    if not template:
        raise ConfigError(
            "no file or folder to record to is set",
            subject=subject,
            hint="Set its URL to a folder such as ~/Videos/ or a file such as "
            "~/Videos/stream-{date}-{time}.mkv",
        )
    if _CONTROL.search(template):  # FFmpeg cannot even be started with a NUL in a path
        raise ConfigError(
            "the recording path contains a line break or another control character",
            subject=subject,
            hint="Set its folder or file path again, without it",
        )
    if "://" in template:
        raise ConfigError(
            "a recording takes a file or folder path, not a URL",
            subject=subject,
            hint="Set its URL to a folder such as ~/Videos/",
        )
    if not os.path.isabs(os.path.expanduser(template)):
        raise ConfigError(
            "the recording path is relative",
            subject=subject,
            hint="Use a full path such as ~/Videos/ (Cascade's working folder is not fixed)",
        )
    path = recording_path(template, now)
    suffix = Path(path).suffix.lower()
    if suffix not in RECORDING_FORMATS:
        raise ConfigError(
            f"recordings are written as {kinds} files, not '{suffix}'",
            subject=subject,
            hint="End the file name with .mkv or .mp4, or end a folder path with '/'",
        )
    return path
