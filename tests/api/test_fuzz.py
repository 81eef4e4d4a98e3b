"""A property-based fuzz run of a real agent's API against its own OpenAPI document.

``cascade run --headless`` runs as a subprocess (real FFmpeg children, its own temporary
config directory, a forced token, keys in a vault in that directory, never the OS keyring).
Schemathesis loads the document the agent serves and sends every operation generated
requests, valid ones (positive) and invalid ones (negative), each answer checked with:

- ``not_a_server_error``: never a 500, whatever the request;
- ``status_code_conformance``: only the status codes the document lists;
- ``content_type_conformance`` and ``response_schema_conformance``: the answer is the
  documented media type and matches the documented schema.

``positive_data_acceptance`` and ``negative_data_rejection`` are not used: the ids in paths
are random strings that are mostly unknown, so a schema-valid request rightly gets 404 (or
409 for a group that cannot start now, 422 for a URL the platform would refuse), and the
document's schemas cannot say which ids exist; "valid data must be accepted" does not hold
for this API by design.

``GET /api/v1/events`` is fuzzed like the rest: without an ``Upgrade`` header it must answer
the documented 400 (the WebSocket itself is driven in test_agent_e2e.py). ``GET
/api/v1/openapi.json`` is the one operation schemathesis leaves out, having just loaded it;
test_openapi.py checks that answer. Negative cases drop the token (401) and add random
headers, now and then a foreign ``Host`` (403): documented answers too.

Random ids would leave the real groups and targets untouched, so each request's ``{id}`` is,
about half the time, replaced by an id the agent has at that moment: edits, renames, live
actions and deletions then hit real objects. Operations run reads first, then edits and live
actions, then switching the profile (after a stop-all, since a switch is refused while
anything is started or armed), then deletions, so that most of the run sees a profile with
groups and targets in it.

Bounded: a fixed number of examples per operation and mode, derandomized (the same run every
time), no shrinking (the failing request is reported as it was sent), a timeout on every
request, and a time limit on the test: about 25 s here. After the run the agent must stop
on SIGTERM with exit code 0, no Traceback in its output or log, and no child left behind.

At the end, hostile requests that generated data rarely builds (found while fuzzing by hand)
are kept as fast in-process cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import site
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from agent.api.app import create_app
from agent.api.openapi import openapi_document
from agent.api.security import Guard
from agent.control import Control
from agent.core.agent import Agent
from agent.core.model import (
    Group,
    GroupMode,
    IngestSettings,
    Platform,
    Profile,
    Target,
    VideoSettings,
)
from agent.paths import config_dir
from agent.store.profiles import ProfileStore
from agent.store.secrets import SecretStore
from tests.streams import free_port

ROOT = Path(__file__).resolve().parents[2]

# Per operation and generation mode; CASCADE_FUZZ_EXAMPLES=200 makes a longer hunt by hand.
EXAMPLES = int(os.environ.get("CASCADE_FUZZ_EXAMPLES", "25"))
REQUEST_TIMEOUT_S = 30.0
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# No parameter, no body and no token: there is nothing a negative case could make invalid.
NOTHING_TO_NEGATE = {"GET /healthz"}
# Reads, then edits and live actions, then switching profiles, then removals.
ORDER = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 3}


@dataclass
class RunningAgent:
    proc: subprocess.Popen[bytes]
    url: str
    token: str
    config_dir: Path
    stderr_path: Path
    children: list[psutil.Process] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def note_children(self) -> None:
        """Remember the agent's FFmpeg children (to check they end with it)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            self.children += psutil.Process(self.proc.pid).children(recursive=True)

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; its exit code."""
        self.note_children()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(STOP_TIMEOUT_S)

    def children_left(self) -> list[psutil.Process]:
        """The remembered children still running a few seconds after the agent ended."""
        _, alive = psutil.wait_procs(self.children, timeout=5)
        return [p for p in alive if _alive(p)]

    def logs(self) -> str:
        log_file = self.config_dir / "logs" / "cascade.log"
        stderr = self.stderr_path.read_text("utf-8", errors="replace")
        logged = log_file.read_text("utf-8", errors="replace") if log_file.exists() else ""
        return f"--- stderr ---\n{stderr}\n--- {log_file} ---\n{logged}"


def _profiles(store: ProfileStore, recordings: Path) -> None:
    closed = free_port()  # nothing listens there: a custom target that never connects
    store.save(
        Profile(
            name="studio",
            ingest=IngestSettings(port=free_port()),
            groups=[
                Group(
                    id="main",
                    name="Main",
                    targets=[
                        Target(id="site", url=f"rtmp://127.0.0.1:{closed}/live"),
                        Target(
                            id="rec",
                            platform=Platform.RECORDING,
                            url=str(recordings / "main.mkv"),
                        ),
                    ],
                ),
                Group(
                    id="hd",
                    mode=GroupMode.REENCODE,
                    video=VideoSettings(
                        width=640, height=360, bitrate_kbps=800, preset="ultrafast"
                    ),
                    targets=[
                        Target(id="hd-site", url=f"rtmp://127.0.0.1:{closed}/hd"),
                        Target(id="hd-rec", platform=Platform.RECORDING, url=f"{recordings}/"),
                    ],
                ),
            ],
        )
    )
    store.save(
        Profile(
            name="spare",
            ingest=IngestSettings(port=free_port()),
            groups=[
                Group(
                    id="backup",
                    targets=[Target(id="backup-site", url=f"rtmp://127.0.0.1:{closed}/b")],
                )
            ],
        )
    )
    store.use("studio")


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[RunningAgent]:
    """``cascade run --headless`` on a free port, set up with two profiles; killed if a test
    leaves it running."""
    config, work, recordings = tmp_path / "config", tmp_path / "work", tmp_path / "recordings"
    for folder in (config, work, recordings):
        folder.mkdir()
    _profiles(ProfileStore(config), recordings)
    port = free_port()
    token = secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "CASCADE_CONFIG_DIR": str(config),
        # A token from the environment cannot be rotated, so a fuzzed POST /api/v1/token/rotate
        # is refused (409) and the run never locks itself out.
        "CASCADE_API_TOKEN": token,
        # Keys go to a vault in the temporary config directory, never to an OS keyring.
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "CASCADE_VAULT_PASSPHRASE": secrets.token_urlsafe(16),
        # A fuzzed PATCH /api/v1/settings {"autostart": true} writes its login entry here,
        # never into the real home (the user's site-packages stay where they are).
        "HOME": str(work),
        "XDG_CONFIG_HOME": str(work / ".config"),
        "PYTHONUSERBASE": os.environ.get("PYTHONUSERBASE") or site.getuserbase(),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("CASCADE_FFMPEG", None)
    stderr_path = tmp_path / "agent.stderr"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--headless", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            cwd=work,  # a relative path a fuzzed request names lands here, if anywhere
            env=env,
        )
    running = RunningAgent(proc, f"http://127.0.0.1:{port}", token, config, stderr_path)
    try:
        _wait_healthy(running)
        yield running
    finally:
        if proc.poll() is None:  # the test failed before stopping it: no stray processes
            running.note_children()
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)
        for child in running.children:  # psutil checks it is still the same process
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def _wait_healthy(agent: RunningAgent) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if agent.proc.poll() is not None:
            pytest.fail(f"the agent exited with {agent.proc.returncode}\n{agent.logs()}")
        try:
            if requests.get(f"{agent.url}/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the agent did not answer /healthz within {START_TIMEOUT_S} s\n{agent.logs()}")


def _order(operation: Any) -> tuple[int, bool, str]:
    rank = 2 if operation.path.endswith("/activate") else ORDER[operation.method.upper()]
    return rank, "/groups/" in operation.path, operation.label  # targets go before groups


def _api(agent: RunningAgent, session: requests.Session, method: str, path: str) -> Any:
    """A plain, authenticated call that must succeed; its JSON answer."""
    resp = session.request(
        method, f"{agent.url}{path}", headers=agent.auth, timeout=REQUEST_TIMEOUT_S
    )
    assert resp.status_code == 200, f"{method} {path}: {resp.status_code} {resp.text}"
    return resp.json()


class Ids:
    """The ids the agent has right now, read through the API, for ``{id}`` in paths."""

    def __init__(self, agent: RunningAgent, session: requests.Session) -> None:
        self._agent = agent
        self._session = session

    def _get(self, path: str) -> Any:
        return _api(self._agent, self._session, "GET", path)

    def of(self, path: str) -> list[str]:
        if path.startswith("/api/v1/profiles/"):
            return list(self._get("/api/v1/profiles")["profiles"])
        groups = self._get("/api/v1/profile")["groups"]
        if path.startswith("/api/v1/groups/"):
            return [g["id"] for g in groups]
        return [t["id"] for g in groups for t in g["targets"]]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_api_keeps_its_openapi_contract_under_fuzzing(agent: RunningAgent) -> None:
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(
        f"{agent.url}/api/v1/openapi.json", headers=agent.auth, timeout=REQUEST_TIMEOUT_S
    )
    loaded = list(schema.get_all_operations())
    assert all(isinstance(r, Ok) for r in loaded), [r for r in loaded if not isinstance(r, Ok)]
    operations = sorted((r.ok() for r in loaded if isinstance(r, Ok)), key=_order)
    documented = {
        f"{method.upper()} {path}"
        for path, item in openapi_document()["paths"].items()
        for method in item
        if method != "parameters"
    }
    # Schemathesis leaves out the operation that served it the document (test_openapi.py
    # checks that answer against openapi_document()).
    missing = documented - {op.label for op in operations} - {"GET /api/v1/openapi.json"}
    assert not missing, f"operations schemathesis does not see: {sorted(missing)}"

    session = requests.Session()
    ids = Ids(agent, session)
    failures: list[str] = []
    statuses: dict[str, dict[int, int]] = {}
    seconds: dict[str, float] = {}

    for operation in operations:
        modes = [GenerationMode.POSITIVE]
        if operation.label not in NOTHING_TO_NEGATE:
            modes.append(GenerationMode.NEGATIVE)
        if operation.path.endswith("/activate"):
            # Switching profiles is refused (409) while a group is started or armed, as the
            # live operations before leave them: stop everything first, as a person would.
            _api(agent, session, "POST", "/api/v1/stop-all")
        for mode in modes:
            label = f"{operation.label} [{mode.value}]"
            seen = statuses.setdefault(label, {})
            began = time.monotonic()
            try:
                _fuzz(operation, mode, agent, session, ids, seen)
            except Unsatisfiable as exc:
                failures.append(f"{label}: nothing could be generated: {exc}")
            except (AssertionError, requests.RequestException) as exc:  # one failed check
                failures.append(f"{label}:\n{exc}")
            except BaseExceptionGroup as group:  # schemathesis: several failed checks
                failures.append(f"{label}:\n{group}")
            seconds[label] = time.monotonic() - began
            assert agent.proc.poll() is None, f"the agent died\n{agent.logs()}"
            _api(agent, session, "GET", "/api/v1/status")  # still answering, token still good
        if operation.path.endswith("/activate"):  # the removals then work on the big one
            _api(agent, session, "POST", "/api/v1/stop-all")
            _api(agent, session, "POST", "/api/v1/profiles/studio/activate")

    fuzz_seconds = time.monotonic() - started
    summary = "\n".join(
        f"  {label}: {dict(sorted(codes.items()))} in {seconds.get(label, 0):.1f} s"
        for label, codes in statuses.items()
    )
    print(f"fuzzed {len(operations)} operations in {fuzz_seconds:.1f} s; answers:\n{summary}")

    code = agent.stop()
    logs = agent.logs()
    assert not failures, "\n\n".join(failures) + f"\n\n{summary}"
    assert code == 0, f"the agent exited with {code} after SIGTERM\n{logs}"
    assert "Traceback" not in logs, logs
    assert "agent stopped" in logs, logs
    left = agent.children_left()
    assert not left, f"children left running after the agent stopped: {left}"
    # Every operation answered something, and a real id was hit by the ones that take one.
    assert all(statuses.values()), summary
    for label, codes in statuses.items():
        if "{id}" in label and "[positive]" in label and not label.startswith("DELETE"):
            assert set(codes) - {401, 404}, f"{label} never reached a real object: {codes}"


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    agent: RunningAgent,
    session: requests.Session,
    ids: Ids,
    seen: dict[int, int],
) -> None:
    """Send one operation its generated requests and check every answer; raises on the
    first failing one (the run then carries on with the next operation)."""

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded, and as sent
        report_multiple_bugs=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )
    @given(case=operation.as_strategy(generation_mode=mode), pick=st.integers(0, 5))
    def fuzz(case: Any, pick: int) -> None:
        if "id" in (case.path_parameters or {}):
            known = ids.of(operation.path)
            if pick < len(known):  # about half the time, an id that exists now
                case.path_parameters = {**case.path_parameters, "id": known[pick]}
        response = case.call_and_validate(
            base_url=agent.url,
            session=session,
            headers=agent.auth,
            checks=CHECKS,
            timeout=REQUEST_TIMEOUT_S,
        )
        seen[response.status_code] = seen.get(response.status_code, 0) + 1

    fuzz()


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


# -- hostile requests the generator rarely builds, found while fuzzing by hand -----------------
#
# Each of these once answered 500 (or was accepted and would have broken FFmpeg later). They
# run in-process against the real app around an agent that was never started: every one is
# refused before anything would run.

TOKEN = "fuzz-regressions-token-5e0b7d21"


@pytest.fixture
async def app_client(aiohttp_client: Any) -> Any:
    cfg = config_dir()  # the suite's temporary config directory
    store = ProfileStore(cfg)
    site = Target(id="site", url="rtmp://127.0.0.1:1/live")
    store.save(Profile(name="studio", groups=[Group(id="main", targets=[site])]))
    store.use("studio")
    agent = Agent(cfg, profile=store.load("studio"))

    def no_secrets() -> SecretStore:
        raise AssertionError("every request here is refused before a key is stored")

    control = Control(agent, store, secrets=no_secrets, keys_for=lambda name: lambda t: None)
    guard = Guard(TOKEN, port=0)
    client = await aiohttp_client(create_app(control, guard))
    guard.port = client.server.port
    return client


HOSTILE = [
    pytest.param(
        "PATCH", "/api/v1/ingest", "[" * 20000 + "]" * 20000, {}, 400, None, id="nested-json"
    ),
    pytest.param(
        "PATCH",
        "/api/v1/ingest",
        b"this is not gzip",
        {"Content-Encoding": "gzip"},
        400,
        None,
        id="body-not-in-its-content-encoding",
    ),
    pytest.param(
        "POST",
        "/api/v1/groups",
        '{"id": "x", "name": "a\\ud800"}',
        {},
        400,
        None,
        id="lone-surrogate",
    ),
    pytest.param(
        "POST",
        "/api/v1/groups/main/targets",
        '{"id": "t", "url": "rtmp://127.0.0.1:1/\\udfff"}',
        {},
        400,
        None,
        id="lone-surrogate-in-a-url",
    ),
    pytest.param(
        "POST",
        "/api/v1/profiles/Not%20a%20name/activate",
        None,
        {},
        404,
        None,
        id="activate-a-name-no-profile-can-have",
    ),
    pytest.param(
        "PUT",
        "/api/v1/targets/site/key",
        '{"key": "abc\\u0000def"}',
        {},
        422,
        "key",
        id="stream-key-with-a-nul",
    ),
    pytest.param(
        "POST",
        "/api/v1/groups/main/targets",
        '{"id": "rec", "platform": "recording", "url": "/tmp/a\\u0000b.mkv"}',
        {},
        422,
        "url",
        id="recording-path-with-a-nul",
    ),
    pytest.param(
        "PATCH",
        "/api/v1/groups/main",
        '{"audio": {"codec": ""}}',
        {},
        422,
        "audio.codec",
        id="passthrough-group-given-a-bad-audio-codec",
    ),
    pytest.param(
        "POST",
        "/api/v1/groups",
        '{"id": "pt", "video": {"fps": -5, "width": 678731}}',
        {},
        422,
        "video.width",
        id="passthrough-group-given-bad-video",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "field"), HOSTILE)
async def test_a_hostile_request_gets_a_clear_4xx_never_a_500(
    app_client: Any,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: str | bytes | None,
    headers: dict[str, str],
    status: int,
    field: str | None,
) -> None:
    resp = await app_client.request(
        method,
        path,
        data=body.encode() if isinstance(body, str) else body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", **headers},
    )
    answer = await resp.json()
    assert resp.status == status, answer
    assert answer["error"]["message"]
    if field is not None:
        assert answer["error"]["field"].endswith(field), answer
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and "agent" in r.name]


async def test_a_token_that_is_not_utf8_is_just_a_wrong_token(app_client: Any) -> None:
    """Header bytes that are not UTF-8 reach the app as surrogates; they once crashed the
    token comparison (500). Sent raw, since an HTTP client would encode them first."""
    port = app_client.server.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            b"Authorization: Bearer x\xff\xfe\r\nConnection: close\r\n\r\n" % port
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 401 Unauthorized", answer
    assert b'"unauthorized"' in rest
