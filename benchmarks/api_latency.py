"""The local API benchmark: start-up to ``/healthz`` and the latency of ``GET /api/v1/status``.

Run it as ``python benchmarks/api_latency.py [--calls 200] [--json out.json]`` (or
``python -m benchmarks.api_latency``). It starts the real agent, ``cascade run --headless``
(as ``python -m agent run --headless``, the same entry point), on a free port with a
temporary config directory holding a profile of three groups and seven targets, and measures:

- **start-up**: from just before the process is started to the first ``GET /healthz`` that
  answers 200 (a new connection tried every 5 ms), budget ≤ 1 s;
- **ready**: to the status saying the ingest listens (OBS could publish), reported only;
- **latency**: ``--calls`` sequential ``GET /api/v1/status`` calls (200 by default) over one
  keep-alive connection (stdlib ``http.client``), each from sending the request to having read
  the whole body; p50/p95/p99/max, budget p99 ≤ 10 ms. The judged run starts once the agent
  is ready, 1 s later, after 5 warm-up calls. The same number of calls made at once after
  ``/healthz``, while the agent is still finding and probing FFmpeg and starting the ingest,
  is reported apart, as is the very first call (a new connection);
- **memory**: the agent's own RSS (the Python process alone, no FFmpeg child) once the calls
  are done and nothing is live, budget ≤ 60 MB.

It prints the figures and a PASS/FAIL per budget on stdout and exits 1 if a budget is
missed, 2 if the agent could not be measured at all. How and why is in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
WARMUP_CALLS = 5
HEALTHZ_POLL_S = 0.005
STARTUP_TIMEOUT_S = 20.0
SETTLE_S = 1.0  # after the ingest listens: the FFmpeg capability probe and start-up settle
BUDGET_STARTUP_S = 1.0
BUDGET_P99_MS = 10.0
BUDGET_IDLE_RSS_MB = 60.0


class BenchmarkError(RuntimeError):
    """The agent could not be measured (it did not start, or answered wrongly)."""


@dataclass(frozen=True)
class Budget:
    name: str
    value: float
    limit: float
    unit: str

    @property
    def passed(self) -> bool:
        return self.value <= self.limit

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pass": self.passed}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_profile(config_dir: Path) -> dict[str, int]:
    """The active profile: three groups, seven targets (none started), ingest on a free port.

    Written with the agent's own store, so it is exactly what a person's set-up looks like on
    disk. Keys are ``${ENV}`` references: nothing starts, so none is ever read.
    """
    sys.path.insert(0, str(ROOT))
    from agent.core.model import (
        Group,
        GroupMode,
        IngestSettings,
        Platform,
        Profile,
        Target,
        VideoSettings,
    )
    from agent.store.profiles import ProfileStore

    def key(name: str) -> str:
        return "${CASCADE_BENCH_" + name.upper() + "_KEY}"

    profile = Profile(
        name="default",
        ingest=IngestSettings(port=free_port(), key="bench-ingest"),
        groups=[
            Group(
                id="main",
                name="Main",
                targets=[
                    Target(id="youtube", platform=Platform.YOUTUBE, key_ref=key("youtube")),
                    Target(id="twitch", platform=Platform.TWITCH, key_ref=key("twitch")),
                    Target(id="custom", url="rtmp://127.0.0.1:1/live", key_ref=key("custom")),
                ],
            ),
            Group(
                id="720p",
                name="720p",
                mode=GroupMode.REENCODE,
                video=VideoSettings(width=1280, height=720, fps=30, bitrate_kbps=3000),
                targets=[
                    Target(id="kick", platform=Platform.KICK, key_ref=key("kick")),
                    Target(id="facebook", platform=Platform.FACEBOOK, key_ref=key("facebook")),
                ],
            ),
            Group(
                id="local",
                name="Local",
                targets=[
                    Target(
                        id="disk",
                        platform=Platform.RECORDING,
                        url=str(config_dir / "recordings" / "show.mkv"),
                    ),
                    Target(id="backup", url="rtmp://127.0.0.1:2/live", enabled=False),
                ],
            ),
        ],
    )
    store = ProfileStore(config_dir)
    store.save(profile)
    store.use(profile.name)
    return {"groups": len(profile.groups), "targets": sum(len(g.targets) for g in profile.groups)}


def healthz(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", "/healthz")
        answer = conn.getresponse()
        answer.read()
        return answer.status == 200
    except OSError:
        return False
    finally:
        conn.close()


def wait_healthz(proc: subprocess.Popen[bytes], port: int, started: float, log: Path) -> float:
    """Seconds from ``started`` to /healthz answering 200."""
    while not healthz(port):
        if proc.poll() is not None:
            raise BenchmarkError(f"the agent exited with {proc.returncode}:\n{tail(log)}")
        if time.perf_counter() - started > STARTUP_TIMEOUT_S:
            raise BenchmarkError(
                f"/healthz did not answer in {STARTUP_TIMEOUT_S:g} s:\n{tail(log)}"
            )
        time.sleep(HEALTHZ_POLL_S)
    return time.perf_counter() - started


def timed_status(conn: http.client.HTTPConnection, headers: dict[str, str]) -> tuple[float, bytes]:
    """One GET /api/v1/status: milliseconds from sending to the whole body read, and the body."""
    begin = time.perf_counter()
    conn.request("GET", "/api/v1/status", headers=headers)
    answer = conn.getresponse()
    body = answer.read()
    elapsed = (time.perf_counter() - begin) * 1000
    if answer.status != 200:
        raise BenchmarkError(f"GET /api/v1/status answered {answer.status}: {body[:300]!r}")
    if answer.will_close:
        raise BenchmarkError("the agent closed the keep-alive connection")
    return elapsed, body


def wait_ready(
    conn: http.client.HTTPConnection,
    headers: dict[str, str],
    proc: subprocess.Popen[bytes],
    started: float,
    log: Path,
) -> float:
    """Seconds from ``started`` to the status saying the ingest listens (ready for OBS)."""
    while True:
        _, body = timed_status(conn, headers)
        if json.loads(body)["ingest"]["state"] == "listening":
            return time.perf_counter() - started
        if proc.poll() is not None:
            raise BenchmarkError(f"the agent exited with {proc.returncode}:\n{tail(log)}")
        if time.perf_counter() - started > STARTUP_TIMEOUT_S:
            raise BenchmarkError(f"the ingest did not listen in {STARTUP_TIMEOUT_S:g} s")
        time.sleep(0.02)


def summary(times: Sequence[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50": round(percentile(ordered, 50), 3),
        "p95": round(percentile(ordered, 95), 3),
        "p99": round(percentile(ordered, 99), 3),
        "max": round(ordered[-1], 3),
        "mean": round(statistics.fmean(ordered), 3),
    }


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 200 calls is the 198th fastest)."""
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(rank) - 1]


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop_agent(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then SIGKILL after 15 s; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def measure(calls: int, workdir: Path) -> dict[str, Any]:
    config_dir = workdir / "config"
    config_dir.mkdir()
    setup = write_profile(config_dir)
    port = free_port()
    token = secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "CASCADE_CONFIG_DIR": str(config_dir),
        "CASCADE_API_TOKEN": token,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    env.pop("CASCADE_FFMPEG", None)
    log = workdir / "agent.log"
    argv = [sys.executable, "-m", "agent", "run", "--headless", "--port", str(port)]
    with open(log, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        startup_s = wait_healthz(proc, port, started, log)
        headers = {"Authorization": f"Bearer {token}", "Host": f"127.0.0.1:{port}"}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10.0)
        try:
            first_ms, _ = timed_status(conn, headers)
            # The same calls at once, while the agent is still starting (FFmpeg found and
            # probed, the ingest started): reported, not judged.
            during_startup = [timed_status(conn, headers)[0] for _ in range(calls)]
            ready_s = wait_ready(conn, headers, proc, started, log)
            time.sleep(SETTLE_S)
            for _ in range(WARMUP_CALLS):
                timed_status(conn, headers)
            timed = [timed_status(conn, headers) for _ in range(calls)]
        finally:
            conn.close()
        times = [ms for ms, _ in timed]
        body = timed[-1][1]
        status = json.loads(body)
        seen = sum(len(g["targets"]) for g in status["groups"])
        if seen != setup["targets"]:
            raise BenchmarkError(f"status lists {seen} targets, the profile {setup['targets']}")
        time.sleep(0.5)  # let the last answer's garbage go before reading the memory
        agent = psutil.Process(proc.pid)
        rss_mb = agent.memory_info().rss / MB
        children = len(agent.children(recursive=True))
    finally:
        exit_code = stop_agent(proc)
    return {
        "calls": calls,
        "warmup_calls": WARMUP_CALLS,
        "status_bytes": len(body),
        "profile": setup,
        "startup_to_healthz_s": round(startup_s, 4),
        "ready_s": round(ready_s, 4),
        "first_call_ms": round(first_ms, 3),
        "latency_ms": summary(times),
        "latency_during_startup_ms": summary(during_startup),
        "idle_rss_mb": round(rss_mb, 1),
        "agent_children_idle": children,
        "agent_exit_code": exit_code,
    }


def budgets(figures: dict[str, Any]) -> list[Budget]:
    return [
        Budget("cascade run --headless to /healthz", figures["startup_to_healthz_s"],
               BUDGET_STARTUP_S, "s"),
        Budget(f"GET /api/v1/status p99 of {figures['calls']} sequential calls",
               figures["latency_ms"]["p99"], BUDGET_P99_MS, "ms"),
        Budget("agent RSS idle (Python process alone)", figures["idle_rss_mb"],
               BUDGET_IDLE_RSS_MB, "MB"),
    ]  # fmt: skip


def _columns(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "ms":
        return f"{value:.2f} ms"
    return f"{value:.1f} {unit}"


def table(figures: dict[str, Any], judged: list[Budget], meta: dict[str, Any]) -> str:
    calls = figures["calls"]
    lines = [
        f"Cascade local API benchmark — Python {meta['python']}, {meta['cpus']} CPUs; profile "
        f"of {figures['profile']['groups']} groups, {figures['profile']['targets']} targets "
        f"(nothing live); status answer {figures['status_bytes']} bytes",
        "Start-up: process start to the first /healthz 200 (polled every 5 ms); ready: to the "
        "ingest listening. Latency: one keep-alive",
        f"connection (http.client), {calls} sequential GET /api/v1/status, request sent to body "
        f"read; judged once ready + {SETTLE_S:g} s + {figures['warmup_calls']} warm-up calls.",
        "RSS: the agent's own process (no FFmpeg child) after the calls, nothing live.",
        "",
        f"Start-up to /healthz {figures['startup_to_healthz_s']:.3f} s; ready for OBS (ingest "
        f"listening) {figures['ready_s']:.3f} s; first call (new connection) "
        f"{figures['first_call_ms']:.2f} ms",
        "",
        "Latency of GET /api/v1/status",
    ]
    rows = [["when", "calls", "p50", "p95", "p99", "max", "mean"]]
    for label, key in (
        ("idle (judged)", "latency_ms"),
        ("right after /healthz, while starting", "latency_during_startup_ms"),
    ):
        lat = figures[key]
        rows.append(
            [label, str(calls), *(f"{lat[k]:.2f} ms" for k in ("p50", "p95", "p99", "max", "mean"))]
        )
    lines += _columns(rows, right=set(range(1, 7)))
    lines += ["", "Budgets"]
    rows = [["what", "figure", "budget", ""]]
    for b in judged:
        mark = "PASS" if b.passed else "FAIL"
        rows.append([b.name, _fmt(b.value, b.unit), f"≤ {b.limit:g} {b.unit}", mark])
    lines += _columns(rows, right={1})
    lines.append(
        f"\nagent exit code on SIGTERM: {figures['agent_exit_code']}; "
        f"{meta['elapsed_s']:g} s in all."
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/api_latency.py",
        description="Start-up to /healthz, GET /api/v1/status latency and idle RSS of the agent.",
    )
    parser.add_argument(
        "--calls", type=int, default=200, help="sequential status calls to time (default 200)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    parser.add_argument("--keep", action="store_true", help="keep the config dir and agent log")
    args = parser.parse_args(argv)
    if args.calls < 1:
        parser.error("--calls must be at least 1")

    begun = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="cascade-api-bench-"))
    try:
        figures = measure(args.calls, workdir)
    except BenchmarkError as exc:
        print(f"api_latency: the agent could not be measured: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    meta = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "elapsed_s": round(time.perf_counter() - begun, 1),
    }
    judged = budgets(figures)
    print(table(figures, judged, meta))
    if args.json:
        data = {
            "meta": meta,
            **figures,
            "budgets": [b.to_dict() for b in judged],
            "all_pass": all(b.passed for b in judged),
        }
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    return 0 if all(b.passed for b in judged) else 1


if __name__ == "__main__":
    raise SystemExit(main())
