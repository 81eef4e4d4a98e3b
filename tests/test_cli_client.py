"""``cascade status|start|stop|toggle|start-all|stop-all|token`` against a real running agent.

The agent is a real ``cascade run --headless`` process (tests/agent_process.py) with a profile
saved beforehand: an RTMP ingest on a free port, a group ``main`` with two recording targets
and a group ``spare`` with one, all writing into a temporary folder. A real publisher (FFmpeg,
like OBS) streams into the ingest. The commands run in-process through ``agent.cli.main``;
each test checks the printed answer and, through the API, the state it left behind.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent import __version__
from agent.api.client import AgentNotRunning, ApiClient, ApiRequestError, TokenRefused
from agent.api.token import TOKEN_ENV
from agent.cli import main
from agent.core.model import Group, IngestSettings, Platform, Profile, Target
from agent.core.settings import Settings, save_settings
from agent.platform.single_instance import LOCK_FILE, LockHolder
from agent.remote import all_line, format_status, group_line, target_line
from agent.store.profiles import ProfileStore
from tests.agent_process import ROOT, AgentProcess
from tests.streams import free_port

STATUS = "/api/v1/status"


@pytest.fixture(autouse=True)
def _no_token_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads CASCADE_API_TOKEN like the agent: each test sets it only on purpose."""
    monkeypatch.delenv(TOKEN_ENV, raising=False)


def cascade(capsys: pytest.CaptureFixture[str], cfg: Path, *args: str) -> tuple[int, str, str]:
    """Run ``cascade --config-dir CFG ARGS...`` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(["--config-dir", str(cfg), *args])
    out, err = capsys.readouterr()
    return code, out, err


def wait_for(
    client: ApiClient, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = client.get(STATUS)
    while not check(status):
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout} s: {json.dumps(status)}")
        time.sleep(0.1)
        status = client.get(STATUS)
    return status


def group_of(status: dict[str, Any], group_id: str) -> dict[str, Any]:
    return next(g for g in status["groups"] if g["id"] == group_id)


def target_of(status: dict[str, Any], target_id: str) -> dict[str, Any]:
    return next(t for g in status["groups"] for t in g["targets"] if t["id"] == target_id)


def all_sending(group: dict[str, Any]) -> bool:
    """Every enabled target of the group is live and has reported its figures."""
    enabled = [t for t in group["targets"] if t["enabled"]]
    return all(t["state"] == "live" and t["bitrate_kbps"] is not None for t in enabled)


def save_profile(cfg: Path, records: Path, ingest_port: int) -> None:
    def recording(target_id: str) -> Target:
        return Target(id=target_id, platform=Platform.RECORDING, url=f"{records / target_id}/")

    profile = Profile(
        name="default",
        ingest=IngestSettings(port=ingest_port),
        groups=[
            Group(id="main", targets=[recording("rec"), recording("copy")]),
            Group(id="spare", targets=[recording("archive")]),
        ],
    )
    ProfileStore(cfg).save(profile)
    # A default port nothing listens on: finding the agent must go through its lock file.
    save_settings(cfg, Settings(api_port=free_port()))


def publisher(ffmpeg: str, url: str) -> subprocess.Popen[bytes]:
    """A stand-in for OBS: a live 320x240 15 fps test picture with sound, keyframe each 1 s."""
    return subprocess.Popen(
        [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
         "-f", "lavfi", "-i", "testsrc2=s=320x240:r=15",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "15",
         "-pix_fmt", "yuv420p", "-b:v", "400k", "-c:a", "aac", "-b:a", "64k",
         "-f", "flv", url],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@dataclass
class Running:
    cfg: Path
    records: Path
    agent: AgentProcess
    client: ApiClient
    obs_url: str


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str) -> Iterator[Running]:
    """A real agent with the test profile (token in the api-token file), and OBS publishing."""
    cfg = tmp_path_factory.mktemp("agent-config")
    records = tmp_path_factory.mktemp("records")
    ingest_port = free_port()
    save_profile(cfg, records, ingest_port)
    obs_url = f"rtmp://127.0.0.1:{ingest_port}/live"
    with AgentProcess(cfg) as agent:
        client = agent.client()
        wait_for(client, lambda s: s["ingest"]["state"] == "listening", "listening")
        obs = publisher(ffmpeg_exe, obs_url)
        try:
            wait_for(client, lambda s: s["ingest"]["state"] == "receiving", "receiving")
            yield Running(cfg, records, agent, client, obs_url)
            client.post("/api/v1/stop-all")
        finally:
            obs.kill()
            obs.wait()


def recorded_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*")) if folder.exists() else 0


# -- the commands against the running agent ---------------------------------------------------


def test_status_shows_profile_ingest_groups_and_targets(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    running.client.post("/api/v1/stop-all")
    code, out, err = cascade(capsys, running.cfg, "status")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"Cascade {__version__}, profile 'default'"
    assert lines[1].startswith(f"Ingest: receiving at {running.obs_url} (h264 320x240 15 fps")
    assert "Group 'main' (passthrough): stopped, 0 of 2 targets live" in lines
    assert "Group 'spare' (passthrough): stopped, 0 of 1 target live" in lines
    assert [line.split() for line in lines if line.startswith("  ")] == [
        ["rec", "idle"],
        ["copy", "idle"],
        ["archive", "idle"],
    ]
    assert lines[-1] == "Total: 0 of 2 groups live, 0 of 3 targets live"

    code, out, _ = cascade(capsys, running.cfg, "status", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["profile"] == "default"
    assert data["ingest"]["url"] == running.obs_url
    assert [g["id"] for g in data["groups"]] == ["main", "spare"]


def test_start_toggle_stop_a_group_and_its_targets(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    client, cfg = running.client, running.cfg
    client.post("/api/v1/stop-all")

    code, out, err = cascade(capsys, cfg, "start", "main")
    assert (code, err) == (0, "")
    assert out.startswith("group 'main': "), out
    assert "of 2 targets live" in out
    status = wait_for(client, lambda s: all_sending(group_of(s, "main")), "main live")
    assert group_of(status, "main")["state"] == "live"
    assert group_of(status, "spare")["state"] == "idle", "another group was started"

    code, out, _ = cascade(capsys, cfg, "status")
    assert code == 0
    assert "Group 'main' (passthrough): live, 2 of 2 targets live" in out, out
    assert any(line.split()[:2] == ["rec", "live"] and "kbps" in line for line in out.splitlines())

    # A target: toggle = disable while live; the other target keeps going untouched.
    rec_before = target_of(client.get(STATUS), "rec")
    code, out, _ = cascade(capsys, cfg, "toggle", "copy")
    assert (code, out) == (0, "target 'copy': disabled\n")
    status = client.get(STATUS)
    assert target_of(status, "copy")["state"] == "disabled"
    assert target_of(status, "copy")["enabled"] is False
    rec_after = target_of(status, "rec")
    assert rec_after["state"] == "live"
    assert rec_after["retries"] == rec_before["retries"]
    assert rec_after["frames"] >= rec_before["frames"]

    code, out, _ = cascade(capsys, cfg, "start", "copy")
    assert code == 0
    assert out.startswith("target 'copy': "), out
    assert "disabled" not in out
    wait_for(client, lambda s: target_of(s, "copy")["state"] == "live", "copy live again")

    # stop = disable for a target, and stop for a group.
    code, out, _ = cascade(capsys, cfg, "stop", "copy")
    assert (code, out) == (0, "target 'copy': disabled\n")
    code, out, _ = cascade(capsys, cfg, "stop", "main")
    assert (code, out) == (0, "group 'main': stopped (0 of 1 target live, 1 disabled)\n")
    status = client.get(STATUS)
    assert group_of(status, "main")["state"] == "idle"
    assert target_of(status, "rec")["state"] == "idle"

    code, out, _ = cascade(capsys, cfg, "start", "copy")  # enabling in a stopped group
    assert (code, out) == (
        0,
        "target 'copy': enabled; its group 'main' is stopped ('cascade start main' starts it)\n",
    )

    code, out, _ = cascade(capsys, cfg, "toggle", "main")
    assert code == 0
    assert out.startswith("group 'main': "), out
    assert "stopped" not in out
    wait_for(client, lambda s: group_of(s, "main")["targets_live"] == 2, "main live again")
    code, out, _ = cascade(capsys, cfg, "toggle", "main")
    assert (code, out) == (0, "group 'main': stopped (0 of 2 targets live)\n")
    assert group_of(client.get(STATUS), "main")["state"] == "idle"

    assert recorded_bytes(running.records / "rec") > 10_000
    assert recorded_bytes(running.records / "copy") > 10_000


def test_start_all_and_stop_all(running: Running, capsys: pytest.CaptureFixture[str]) -> None:
    client, cfg = running.client, running.cfg
    client.post("/api/v1/stop-all")

    code, out, err = cascade(capsys, cfg, "start-all")
    assert (code, err) == (0, "")
    assert out.startswith("all groups started: 'main' "), out
    assert "'spare' " in out
    assert "of 3 targets live" in out
    status = wait_for(client, lambda s: s["totals"]["targets_live"] == 3, "all live")
    assert [g["state"] for g in status["groups"]] == ["live", "live"]

    code, out, _ = cascade(capsys, cfg, "stop-all")
    assert (code, out) == (
        0,
        "all groups stopped: 'main' stopped, 'spare' stopped (0 of 3 targets live)\n",
    )
    status = client.get(STATUS)
    assert [g["state"] for g in status["groups"]] == ["idle", "idle"]
    assert recorded_bytes(running.records / "archive") > 10_000

    code, out, _ = cascade(capsys, cfg, "start", "spare", "--json")  # the API's answer
    assert code == 0
    answer = json.loads(out)
    assert (answer["id"], answer["targets"][0]["id"]) == ("spare", "archive")
    assert answer["state"] != "idle"
    code, out, _ = cascade(capsys, cfg, "stop-all", "--json")
    assert code == 0
    assert [g["state"] for g in json.loads(out)["groups"]] == ["idle", "idle"]


def test_the_printed_token_is_the_one_the_agent_accepts(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (running.cfg / "api-token").exists(), "the test env was expected to have no keyring"
    code, out, err = cascade(capsys, running.cfg, "token")
    assert (code, err) == (0, "")
    token = out.strip()
    assert out == f"{token}\n"
    assert len(token) >= 40
    assert ApiClient(running.agent.url, token).get(STATUS)["profile"] == "default"
    with pytest.raises(TokenRefused):
        ApiClient(running.agent.url, token[:-1] + ("A" if token[-1] != "A" else "B")).get(STATUS)


def test_dashboard_print_gives_a_one_time_login_link(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cascade(capsys, running.cfg, "dashboard", "--print")
    assert (code, err) == (0, "")
    link = out.strip()
    assert link.startswith(f"{running.agent.url}/login?code=")

    class Keep(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:  # answer the 303 itself
            return None

    opener = urllib.request.build_opener(Keep)
    with pytest.raises(urllib.error.HTTPError) as first:
        opener.open(link, timeout=10)
    assert first.value.code == 303 and first.value.headers["Location"] == "/#live"
    assert "cascade_session=" in (first.value.headers["Set-Cookie"] or "")
    with pytest.raises(urllib.error.HTTPError) as again:  # one use only
        opener.open(link, timeout=10)
    first.value.close()
    again.value.close()
    assert again.value.headers["Location"] == "/#login"
    assert again.value.headers["Set-Cookie"] is None


def test_dashboard_without_a_browser_prints_the_link(
    running: Running, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or False)
    code, out, err = cascade(capsys, running.cfg, "dashboard")
    assert (code, err) == (0, "")
    assert len(opened) == 1 and opened[0] in out
    assert out.startswith("no browser could be started here; open this link within a minute:")


def test_an_unknown_id_says_what_exists(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cascade(capsys, running.cfg, "start", "nope")
    assert (code, out) == (1, "")
    assert err == (
        "cascade: there is no group or target 'nope' in profile 'default'. Known groups: main, "
        "spare; known targets: archive, copy, rec ('cascade status' shows them)\n"
    )
    # The API's own 404 answer reaches a client as it is.
    with pytest.raises(ApiRequestError) as caught:
        running.client.post("/api/v1/groups/nope/start")
    assert (caught.value.status, caught.value.code) == (404, "not_found")
    assert str(caught.value) == "there is no group 'nope'. Known groups: main, spare"


def test_a_wrong_token_gets_a_clear_401_message(
    running: Running, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "x" * 32)  # overrides the token file, for the CLI only
    code, out, err = cascade(capsys, running.cfg, "status")
    assert (code, out) == (1, "")
    assert err.startswith(
        f"cascade: the agent on 127.0.0.1:{running.agent.port} refused the API token. "
        "'cascade token' prints this config directory's token"
    ), err
    assert "x" * 32 not in err
    code, out, _ = cascade(capsys, running.cfg, "token")
    assert (code, out) == (0, "x" * 32 + "\n")


def test_an_agent_with_the_token_in_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "env-token-for-this-test-0123456789"
    save_profile(tmp_path, tmp_path / "records", free_port())
    with AgentProcess(tmp_path, token=token) as agent:
        monkeypatch.setenv(TOKEN_ENV, token)
        code, out, _ = cascade(capsys, tmp_path, "token")
        assert (code, out) == (0, f"{token}\n")
        code, out, _ = cascade(capsys, tmp_path, "stop", "archive")
        assert (code, out) == (0, "target 'archive': disabled\n")
        assert target_of(agent.client(token).get(STATUS), "archive")["enabled"] is False
        code, _, err = cascade(capsys, tmp_path, "token", "rotate")
        assert code == 1
        assert f"the token comes from the environment variable {TOKEN_ENV}" in err
    assert not (tmp_path / "api-token").exists()


def test_token_rotate_switches_the_running_agent_to_the_new_token_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_profile(tmp_path, tmp_path / "records", free_port())
    port = free_port()
    with AgentProcess(tmp_path, port=port) as agent:
        old = cascade(capsys, tmp_path, "token")[1].strip()
        assert old == agent.token()

        code, out, err = cascade(capsys, tmp_path, "token", "rotate")
        new = out.strip()
        assert code == 0
        assert out == f"{new}\n"
        assert new != old
        assert err == "The running agent now accepts only the new token.\n"
        assert cascade(capsys, tmp_path, "token")[1] == f"{new}\n"
        assert (tmp_path / "api-token").read_text().strip() == new

        # The running agent took the new one and refuses the old one, without a restart.
        assert agent.client(new).get(STATUS)["profile"] == "default"
        with pytest.raises(TokenRefused):
            agent.client(old).get(STATUS)
        code, out, err = cascade(capsys, tmp_path, "status")
        assert (code, err) == (0, "")

    with AgentProcess(tmp_path, port=port):  # and keeps it after a restart
        code, out, err = cascade(capsys, tmp_path, "status")
        assert (code, err) == (0, "")
        assert out.startswith(f"Cascade {__version__}, profile 'default'\n")
        with pytest.raises(TokenRefused):
            ApiClient(f"http://127.0.0.1:{port}", old).get(STATUS)

    code, out, err = cascade(capsys, tmp_path, "token", "rotate")  # no agent: no note
    assert code == 0
    assert out.strip() not in (old, new)
    assert "running agent" not in err


# -- no agent, or not Cascade -------------------------------------------------------------------


def test_no_agent_running_exits_1_saying_how_to_start_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    save_settings(tmp_path, Settings(api_port=port))
    # Details a crashed agent left behind: their process is gone, so they are not used.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_FILE).write_text(LockHolder(dead.pid, time.time(), free_port()).to_json())
    expected = (
        f"cascade: Cascade is not running (nothing answers on 127.0.0.1:{port}). "
        "Start it with 'cascade run'\n"
    )
    for command in (["status"], ["start", "main"], ["stop-all"], ["toggle", "x"]):
        assert cascade(capsys, tmp_path, *command) == (1, "", expected)

    # The same from a real `cascade` process.
    result = subprocess.run(
        [sys.executable, "-m", "agent", "status"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "CASCADE_CONFIG_DIR": str(tmp_path)},
    )
    assert (result.returncode, result.stdout, result.stderr) == (1, "", expected)


def test_an_agent_that_does_not_answer_in_time_is_reported() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)  # accepts connections into the backlog, never answers
        port = server.getsockname()[1]
        client = ApiClient(f"http://127.0.0.1:{port}", "t" * 32, read_timeout=0.3)
        with pytest.raises(AgentNotRunning) as caught:
            client.get(STATUS)
    assert str(caught.value).startswith(f"Cascade on 127.0.0.1:{port} did not answer within 0.3 s")


def test_another_program_on_the_port_is_not_taken_for_cascade() -> None:
    class NotCascade(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"<html>nope</html>")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotCascade)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = ApiClient(f"http://127.0.0.1:{server.server_port}", "t" * 32)
        with pytest.raises(ApiRequestError) as caught:
            client.get(STATUS)
    finally:
        server.shutdown()
        server.server_close()
    assert caught.value.status == 404
    assert str(caught.value) == (
        f"the program on 127.0.0.1:{server.server_port} answered HTTP 404 "
        "(<html>nope</html>); it may not be Cascade"
    )


# -- the answers a person reads (no agent needed) -----------------------------------------------

SAMPLE: dict[str, Any] = {
    "version": "1.2.3",
    "profile": "evening",
    "problem": "",
    "ingest": {
        "kind": "rtmp",
        "url": "rtmp://127.0.0.1:1935/live",
        "state": "receiving",
        "reason": "a stream is coming in",
        "stream": {
            "video_codec": "h264",
            "audio_codec": "aac",
            "width": 1920,
            "height": 1080,
            "fps": 30.0,
        },
        "bitrate_kbps": 6012.4,
    },
    "groups": [
        {
            "id": "main",
            "name": "Main",
            "mode": "passthrough",
            "state": "degraded",
            "armed": False,
            "live": True,
            "encoder": None,
            "targets": [
                {"id": "youtube", "state": "live", "enabled": True, "bitrate_kbps": 6001.0,
                 "retries": 0, "last_error": ""},
                {"id": "twitch", "state": "retrying", "enabled": True, "bitrate_kbps": None,
                 "retries": 3, "last_error": "the server refused the connection"},
                {"id": "kick", "state": "disabled", "enabled": False, "bitrate_kbps": None,
                 "retries": 0, "last_error": ""},
            ],
            "targets_live": 1,
            "bitrate_kbps": 6001.0,
        },
        {
            "id": "720p",
            "name": "720p",
            "mode": "reencode",
            "state": "armed",
            "armed": True,
            "live": False,
            "encoder": {"state": "stopped", "fps": None, "speed": None, "dropped_frames": 0,
                        "last_error": ""},
            "targets": [
                {"id": "rec", "state": "waiting", "enabled": True, "bitrate_kbps": None,
                 "retries": 0, "last_error": ""},
            ],
            "targets_live": 0,
            "bitrate_kbps": 0.0,
        },
    ],
    "totals": {"groups_live": 1, "targets": 4, "targets_live": 1, "targets_failing": 1,
               "bitrate_kbps": 6001.0},
}  # fmt: skip


def test_status_formatter_on_a_sample() -> None:
    assert format_status(SAMPLE) == [
        "Cascade 1.2.3, profile 'evening'",
        "Ingest: receiving at rtmp://127.0.0.1:1935/live (h264 1920x1080 30 fps + aac, 6012 kbps)",
        "Group 'main' \"Main\" (passthrough): live with problems, 1 of 2 targets live, "
        "1 disabled, 6001 kbps",
        "  youtube  live        6001 kbps",
        "  twitch   retrying    3 retries  last error: the server refused the connection",
        "  kick     disabled",
        "Group '720p' (reencode): armed, goes live when OBS publishes, 0 of 1 target live",
        "  encoder: stopped",
        "  rec  waiting",
        "Total: 1 of 2 groups live, 1 of 4 targets live, 1 failing, 6001 kbps out",
    ]


def test_status_formatter_without_groups_or_ffmpeg() -> None:
    status = {
        "version": "1.2.3",
        "profile": "default",
        "problem": "FFmpeg was not found. Run cascade doctor",
        "ingest": {"kind": "rtmp", "url": "rtmp://127.0.0.1:1935/live", "state": "stopped",
                   "reason": "FFmpeg is not available", "stream": {}, "bitrate_kbps": None},
        "groups": [],
        "totals": {"groups_live": 0, "targets": 0, "targets_live": 0, "targets_failing": 0,
                   "bitrate_kbps": 0.0},
    }  # fmt: skip
    assert format_status(status) == [
        "Cascade 1.2.3, profile 'default'",
        "Problem: FFmpeg was not found. Run cascade doctor",
        "Ingest: stopped at rtmp://127.0.0.1:1935/live (FFmpeg is not available)",
        "No groups yet: add one with 'cascade group add ID'.",
        "Total: 0 of 0 groups live, 0 of 0 targets live",
    ]
    assert all_line(status, "started") == (
        "there are no groups in profile 'default' ('cascade group add ID')"
    )


def test_one_line_answers() -> None:
    main_group, armed = SAMPLE["groups"]
    assert group_line(main_group) == (
        "group 'main': live with problems (1 of 2 targets live, 1 disabled, 6001 kbps); "
        "'twitch' retrying: the server refused the connection"
    )
    assert group_line(armed) == (
        "group '720p': armed, goes live when OBS publishes (0 of 1 target live)"
    )
    assert all_line(SAMPLE, "started") == (
        "all groups started: 'main' live with problems, '720p' armed, goes live when OBS "
        "publishes (1 of 4 targets live)"
    )
    base = {"id": "twitch", "group": "main", "group_state": "live", "enabled": True}
    assert target_line({**base, "state": "live", "bitrate_kbps": 5999.6}) == (
        "target 'twitch': live (6000 kbps)"
    )
    assert target_line({**base, "state": "disabled", "enabled": False}) == (
        "target 'twitch': disabled"
    )
    assert target_line({**base, "state": "retrying", "last_error": "refused"}) == (
        "target 'twitch': retrying (refused)"
    )
    assert target_line({**base, "state": "connecting"}) == "target 'twitch': enabled, connecting"
    assert target_line({**base, "state": "waiting", "group_state": "waiting"}) == (
        "target 'twitch': enabled, waiting for the stream from OBS"
    )
