"""What the relays are measured with: the clip, the sink server, and the two peers' commands.

- The clip: 1080p30 H.264 at ~6 Mbit/s + AAC in FLV, made once with the bundled FFmpeg and
  cached (its name carries its length and the command's hash).
- The sink: one nginx-rtmp instance with an application ``sink``; target ``tN`` publishes to
  ``rtmp://127.0.0.1:PORT/sink/tN``. Every relay sends to the same sink, whose own CPU is
  never counted. Its ``/stat`` page tells how many bytes each target delivered.
- The peers: nginx-rtmp ``push`` and a raw ``ffmpeg -listen … -f tee``.

Every command is an argv list; nothing goes through a shell.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.core.model import Group
from agent.media.args import encoder_argv
from benchmarks.procs import BenchmarkError

INGEST_APP = "live"
INGEST_KEY = "bench"
SINK_APP = "sink"

NGINX_MODULE_CANDIDATES = (
    "/usr/lib/nginx/modules/ngx_rtmp_module.so",  # Debian / Ubuntu libnginx-mod-rtmp
    "/usr/lib64/nginx/modules/ngx_rtmp_module.so",
    "/usr/share/nginx/modules/ngx_rtmp_module.so",
)
INSTALL_HINT = "install them with: apt-get install nginx libnginx-mod-rtmp"


# --- tools ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Nginx:
    """An nginx binary and the RTMP module it loads."""

    binary: str
    module: str

    def version(self) -> str:
        out = subprocess.run([self.binary, "-v"], capture_output=True, text=True, timeout=10)
        return (out.stderr or out.stdout).strip().rpartition("/")[2]


def find_nginx() -> Nginx:
    """nginx and its RTMP module, or a :class:`BenchmarkError` saying how to install them."""
    binary = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    module = next((p for p in NGINX_MODULE_CANDIDATES if os.path.exists(p)), None)
    if binary is None or module is None:
        missing = "nginx" if binary is None else "nginx's RTMP module (ngx_rtmp_module.so)"
        raise BenchmarkError(f"{missing} is not installed; {INSTALL_HINT}")
    return Nginx(binary, module)


def ffmpeg_version(ffmpeg: str) -> str:
    out = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, timeout=10)
    first = out.stdout.splitlines()[0] if out.stdout else ""
    return first.removeprefix("ffmpeg version ").split(" Copyright")[0]


# --- the clip ---------------------------------------------------------------------------------


def clip_argv(ffmpeg: str, seconds: float, out: Path) -> list[str]:
    """1080p30 testsrc2 (moving) + a sine tone, 6 Mbit/s CBR-ish H.264, keyframe every 2 s."""
    return [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", f"{seconds:g}", "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-b:v", "6M", "-maxrate", "6M", "-bufsize", "12M",
        "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", "128k", "-f", "flv", str(out),
    ]  # fmt: skip


def make_clip(ffmpeg: str, seconds: float, cache_dir: Path) -> Path:
    """The benchmark clip, made once per length and command and kept in ``cache_dir``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    recipe = " ".join(clip_argv("ffmpeg", seconds, Path("clip.flv")))
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:10]
    path = cache_dir / f"clip-1080p30-{seconds:g}s-{digest}.flv"
    if path.exists() and path.stat().st_size > 0:
        return path
    partial = path.with_suffix(".partial.flv")
    subprocess.run(clip_argv(ffmpeg, seconds, partial), check=True, timeout=600)
    partial.replace(path)
    return path


def publisher_argv(ffmpeg: str, clip: Path, port: int, seconds: float | None = None) -> list[str]:
    """A publisher like OBS: the clip in real time, copied, to ``rtmp://…:port/live/bench``."""
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-re"]
    if seconds is not None:
        argv += ["-t", f"{seconds:g}"]
    return [*argv, "-i", str(clip), "-c", "copy", "-f", "flv", ingest_url(port)]


def ingest_url(port: int) -> str:
    return f"rtmp://127.0.0.1:{port}/{INGEST_APP}/{INGEST_KEY}"


def target_names(count: int) -> list[str]:
    return [f"t{i}" for i in range(1, count + 1)]


# --- nginx configurations ---------------------------------------------------------------------


def _nginx_head(nginx: Nginx, prefix: Path) -> list[str]:
    return [
        f"load_module {nginx.module};",
        "daemon off;",
        "master_process on;",
        "worker_processes 1;",
        f"pid {prefix / 'nginx.pid'};",
        f"error_log {prefix / 'error.log'} warn;",
        "events { worker_connections 1024; }",
    ]


def nginx_argv(nginx: Nginx, prefix: Path) -> list[str]:
    """Run the configuration in ``prefix/nginx.conf`` in the foreground, all paths in prefix."""
    return [
        nginx.binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
        "-e", str(prefix / "error.log"),
    ]  # fmt: skip


def write_peer_conf(nginx: Nginx, prefix: Path, port: int, sink_port: int, count: int) -> None:
    """The nginx-rtmp peer: ``live/bench`` in, one ``push`` line per target out."""
    prefix.mkdir(parents=True, exist_ok=True)
    pushes = [
        f"      push rtmp://127.0.0.1:{sink_port}/{SINK_APP}/{name};"
        for name in target_names(count)
    ]
    lines = [
        *_nginx_head(nginx, prefix),
        "rtmp {",
        "  server {",
        f"    listen 127.0.0.1:{port};",
        f"    application {INGEST_APP} {{",
        "      live on;",
        *pushes,
        "    }",
        "  }",
        "}",
    ]
    (prefix / "nginx.conf").write_text("\n".join(lines) + "\n")


def write_sink_conf(nginx: Nginx, prefix: Path, port: int, stat_port: int) -> None:
    """The sink: accepts any stream in ``sink``, keeps nothing, reports bytes on ``/stat``."""
    prefix.mkdir(parents=True, exist_ok=True)
    temp = prefix / "temp"
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (temp / kind).mkdir(parents=True, exist_ok=True)
    lines = [
        *_nginx_head(nginx, prefix),
        "rtmp {",
        "  server {",
        f"    listen 127.0.0.1:{port};",
        f"    application {SINK_APP} {{ live on; }}",
        "  }",
        "}",
        "http {",
        "  access_log off;",
        *(
            f"  {kind}_temp_path {temp / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        ),
        "  server {",
        f"    listen 127.0.0.1:{stat_port};",
        "    location /stat { rtmp_stat all; }",
        "  }",
        "}",
    ]
    (prefix / "nginx.conf").write_text("\n".join(lines) + "\n")


@dataclass(frozen=True)
class SinkStat:
    """What the sink has received: all-time bytes, and bytes of each stream publishing now."""

    bytes_in: int
    streams: dict[str, int]


def read_sink_stat(stat_port: int, timeout: float = 2.0) -> SinkStat:
    """Parse the sink's ``/stat`` XML."""
    url = f"http://127.0.0.1:{stat_port}/stat"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        root = ET.fromstring(response.read())
    streams: dict[str, int] = {}
    for app in root.iter("application"):
        if app.findtext("name") != SINK_APP:
            continue
        for stream in app.iter("stream"):
            name = stream.findtext("name") or ""
            streams[name] = int(stream.findtext("bytes_in") or 0)
    return SinkStat(int(root.findtext("bytes_in") or 0), streams)


# --- the FFmpeg peers -------------------------------------------------------------------------


def sink_url(sink_port: int, name: str) -> str:
    return f"rtmp://127.0.0.1:{sink_port}/{SINK_APP}/{name}"


def tee_argv(ffmpeg: str, port: int, sink_port: int, count: int) -> list[str]:
    """The raw FFmpeg relay: one listener, ``-c copy``, the tee muxer to every target."""
    outputs = "|".join(
        f"[f=flv:onfail=ignore]{sink_url(sink_port, name)}" for name in target_names(count)
    )
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning",
        "-listen", "1", "-i", ingest_url(port),
        "-map", "0", "-c", "copy", "-f", "tee", outputs,
    ]  # fmt: skip


_PIPE_IN = ["-nostdin", "-f", "flv", "-i", "pipe:0"]


def encode_alone_argv(ffmpeg: str, group: Group, clip: Path, sink_port: int) -> list[str]:
    """The group's encoder exactly as :func:`encoder_argv` builds it, but reading the clip in
    real time from the file instead of the pipe and writing to the sink instead of stdout."""
    argv = encoder_argv(ffmpeg, group)
    start = _find(argv, _PIPE_IN)
    if argv[-1] != "pipe:1" or start < 0:
        raise BenchmarkError(
            "encoder_argv() no longer reads FLV from pipe:0 and writes pipe:1; "
            "update benchmarks.peers.encode_alone_argv"
        )
    argv[start : start + len(_PIPE_IN)] = ["-nostdin", "-re", "-i", str(clip)]
    argv[-1] = sink_url(sink_port, group.targets[0].key or group.targets[0].id)
    return argv


def _find(items: Sequence[str], run: Sequence[str]) -> int:
    for i in range(len(items) - len(run) + 1):
        if list(items[i : i + len(run)]) == list(run):
            return i
    return -1
