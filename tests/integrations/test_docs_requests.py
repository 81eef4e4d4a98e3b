"""The ready-made requests of ``docs/integrations.md`` work, exactly as written.

A person copies them into Companion, a web-request button or a shell, so every one is sent
here to a real running agent (``cascade run --headless``) whose profile has the ids the
document uses (group ``main``, target ``youtube``): the Companion table with its base URL,
header and body, each ``curl`` line, the PowerShell line's method, header and URL, and each
``cascade`` command of the fallback table. Only the port (and the token) differ from the text.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.core.model import Group, Platform, Profile, Target
from agent.store.profiles import ProfileStore
from tests.agent_process import AgentProcess

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "integrations.md").read_text(encoding="utf-8")
TOKEN = "docs-requests-token-0123456789abcdef"
DOC_PORT = "47830"


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    config_dir = tmp_path_factory.mktemp("docs-agent")
    recordings = tmp_path_factory.mktemp("docs-recordings")
    store = ProfileStore(config_dir)
    store.save(
        Profile(
            name="studio",
            groups=[
                Group(
                    id="main",
                    targets=[
                        Target(id="youtube", platform=Platform.RECORDING, url=f"{recordings}/")
                    ],
                )
            ],
        )
    )
    store.use("studio")
    with AgentProcess(config_dir, token=TOKEN) as running:
        yield running


def send(method: str, url: str, headers: dict[str, str], body: bytes | None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def local(url: str, agent: AgentProcess) -> str:
    assert f"127.0.0.1:{DOC_PORT}" in url, url
    return url.replace(f"127.0.0.1:{DOC_PORT}", f"127.0.0.1:{agent.port}")


def companion_rows() -> list[tuple[str, str, str]]:
    section = DOC.split("## Bitfocus Companion", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([^|]+?) \| `(GET|POST)` \| `(/[^`]+)` \|$", section, re.M)
    assert len(rows) >= 10, rows
    return rows


def test_every_companion_button_works_as_the_document_sets_it_up(agent: AgentProcess) -> None:
    section = DOC.split("## Bitfocus Companion", 1)[1]
    base = re.search(r"[Ss]et \*Base URL\* to\s+`([^`]+)`", section)
    header = re.search(r"\*Header input \(JSON\)\*: `([^`]+)`", section)
    body = re.search(r"\*Body\*: `([^`]+)` and \*Content Type\* `([^`]+)`", section)
    assert base and header and body, "the Companion set-up steps changed shape"
    headers = json.loads(header.group(1).replace("YOUR_TOKEN", TOKEN))
    headers["Content-Type"] = body.group(2)
    for label, method, path in companion_rows():
        payload = body.group(1).encode() if method == "POST" else None
        status, answer = send(method, local(base.group(1), agent) + path, headers, payload)
        assert status == 200, f"{label}: {method} {path} answered {status}: {answer}"
        assert isinstance(answer, dict), (label, answer)
        if "/groups/main/" in path and method == "POST":
            assert answer["id"] == "main" and "state" in answer, (label, answer)
    # The buttons did what they say: the last group action was disarm, stop-all ran last.
    group = agent.client(TOKEN).get("/api/v1/groups/main")
    assert group["state"] == "idle", group


def curl_lines() -> list[list[str]]:
    lines = [shlex.split(line) for line in DOC.splitlines() if line.startswith("curl ")]
    assert len(lines) >= 5, lines
    return lines


def test_every_curl_line_works(agent: AgentProcess) -> None:
    before = agent.client(TOKEN).get("/api/v1/targets/youtube")["enabled"]
    for argv in curl_lines():
        method, headers, url = "GET", {}, ""
        args = iter(argv[1:])
        for arg in args:
            if arg == "-X":
                method = next(args)
            elif arg == "-H":
                name, value = next(args).split(": ", 1)
                headers[name] = value.replace("YOUR_TOKEN", TOKEN)
            else:
                url = arg
        status, answer = send(method, local(url, agent), headers, b"" if method != "GET" else None)
        assert status == 200, f"{shlex.join(argv)} answered {status}: {answer}"
    # One toggle of the target ran: it is the other way round now.
    assert agent.client(TOKEN).get("/api/v1/targets/youtube")["enabled"] is not before


def test_the_powershell_line_sends_the_same_request(agent: AgentProcess) -> None:
    line = next(ln for ln in DOC.splitlines() if ln.startswith("Invoke-RestMethod"))
    match = re.fullmatch(
        r'Invoke-RestMethod -Method (\w+) -Headers @\{Authorization = "([^"]+)"\} (\S+)', line
    )
    assert match, line
    method, auth, url = match.groups()
    headers = {"Authorization": auth.replace("YOUR_TOKEN", TOKEN)}
    status, answer = send(method.upper(), local(url, agent), headers, b"")
    assert status == 200 and answer["id"] == "main", (status, answer)


def test_every_fallback_command_works(agent: AgentProcess) -> None:
    section = DOC.split("## The command line fallback", 1)[1]
    commands = re.findall(r"`(cascade [^`]+)`", section)
    assert len(commands) >= 7, commands
    env = {**agent.env}
    for command in commands:
        argv = shlex.split(command)
        done = subprocess.run(
            [sys.executable, "-m", "agent", *argv[1:]],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, f"{command}: {done.stderr}"
        assert done.stdout.strip(), f"{command} printed nothing"
    assert agent.client(TOKEN).get("/api/v1/groups/main")["state"] == "idle"  # stop-all ran
