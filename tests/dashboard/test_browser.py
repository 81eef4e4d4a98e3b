"""The dashboard end to end: a person sets Cascade up and goes live from the browser.

A real agent (``cascade run --headless``, its stream keys in a private Secret Service), two
fake platforms (RTMP servers that record what they receive) and a publisher like OBS; Debian's
Chromium opens the dashboard through a one-time login link and does everything from the page:

1. creates a profile in Set-up and runs it; sets the ingest's port (a port out of range is
   refused next to its field);
2. adds a re-encode group (only usable encoders can be chosen; an odd width is refused next to
   its field) and two custom RTMP targets (a bad URL is refused next to its field);
3. stores a stream key through the write-only field;
4. starts the group from Live while OBS publishes: both targets live, their figures and
   sparklines moving; screenshots of every view, light and dark, at 100 % and 125 %;
5. switches one target off (only it stops; the other's platform receives without a gap) and
   on again; takes the other's server down and sees its error;
6. reads the logs filtered by target, reveals the token and re-probes FFmpeg in Settings;
7. stops, and checks what the platforms received, that the page asked nothing of any other
   host, and that the stream key never reached the page, its traffic or the agent's log.

The steps share one agent and one browser page, in order (``STEPS_IN_ORDER``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from keyring.backends.SecretService import Keyring as SecretServiceKeyring
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from agent.api.client import ApiClient
from agent.store.secrets import SERVICE_NAME
from tests.agent_process import AgentProcess
from tests.dashboard.conftest import AgentFactory, bearer
from tests.dashboard.harness import (
    LAYOUTS,
    SCHEMES,
    BackgroundLoop,
    Screenshots,
    Traffic,
    horizontal_overflow,
    open_dashboard,
    show,
    wait_view_ready,
)
from tests.keyring_session import SecretServiceSession
from tests.streams import (
    FakePlatform,
    Publisher,
    free_port,
    max_gap,
    probe,
    stream,
    video_packets,
    wait_listening,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]
STEPS_IN_ORDER = True

TOKEN = "dashboard-browser-token-8f4e2a61c0d9"
ALPHA_KEY = "alpha-secret-key-3e9b71c5d2"
PROFILE = "studio"
GROUP = "low"
WIDTH, HEIGHT = 480, 270


@dataclass
class Flow:
    """What the steps share: the agent, the signed-in page, the fake platforms, OBS."""

    agent: AgentProcess
    api: ApiClient
    context: BrowserContext
    page: Page
    traffic: Traffic
    streams: BackgroundLoop
    alpha: FakePlatform
    beta: FakePlatform
    publisher: Publisher
    ingest_port: int

    def testid(self, testid: str) -> Locator:
        return self.page.get_by_test_id(testid)

    def field(self, path: str) -> Locator:
        return self.page.get_by_test_id(f"field-{path}")

    def field_error(self, path: str) -> Locator:
        return self.page.locator(f'[data-testid="field-error"][data-for="{path}"]')


@pytest.fixture(scope="module")
def flow(
    browser: Browser,
    start_agent: AgentFactory,
    streams: BackgroundLoop,
    ffmpeg_exe: str,
    relay_clip: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Flow]:
    agent = start_agent(TOKEN)
    api = bearer(agent, TOKEN)
    folder = tmp_path_factory.mktemp("platforms")
    alpha = FakePlatform(ffmpeg_exe, folder / "alpha", key=ALPHA_KEY)
    beta = FakePlatform(ffmpeg_exe, folder / "beta")
    ingest_port = free_port()
    # OBS: the clip over and over, for as long as the steps need.
    publisher = Publisher(ffmpeg_exe, relay_clip, f"rtmp://127.0.0.1:{ingest_port}/live/obs")
    at = publisher.argv.index("-i")
    publisher.argv[at:at] = ["-stream_loop", "-1"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        for server in (alpha, beta):
            streams.run(server.start())
        traffic = Traffic.watch(context)
        page = open_dashboard(context, api)
        yield Flow(agent, api, context, page, traffic, streams, alpha, beta, publisher, ingest_port)
    finally:
        context.close()
        streams.run(publisher.stop())
        for server in (alpha, beta):
            streams.run(server.stop())


# -- reading the page -----------------------------------------------------------------------------


def points(page: Page, target: str) -> int:
    return int(page.get_by_test_id(f"spark-{target}").get_attribute("data-points") or 0)


def seconds(text: str) -> int:
    """'1:05' or '1:02:03' as seconds."""
    total = 0
    for part in text.split(":"):
        total = total * 60 + int(part)
    return total


def kbits(text: str) -> float:
    """'850 kbit/s' or '1.25 Mbit/s' as kbit/s."""
    match = re.fullmatch(r"([\d.,]+) (k|M)bit/s", text.strip())
    assert match, f"not a bitrate: {text!r}"
    value = float(match[1].replace(",", ""))
    return value * 1000 if match[2] == "M" else value


def wait_moving(page: Page, target: str, *, more_points: int = 2, timeout: float = 15_000) -> None:
    """Wait until the target's sparkline has gained points and its uptime has grown."""
    uptime = page.get_by_test_id(f"target-uptime-{target}")
    expect(uptime).to_have_text(re.compile(r"^\d+:\d\d$"))
    page.wait_for_function(
        """([id, points, uptime]) => {
            const spark = document.querySelector(`[data-testid="spark-${id}"]`);
            const text = document.querySelector(`[data-testid="target-uptime-${id}"]`).textContent;
            const [m, s] = text.split(':').map(Number);
            return Number(spark.dataset.points) >= points && m * 60 + s > uptime;
        }""",
        arg=[target, points(page, target) + more_points, seconds(uptime.inner_text())],
        timeout=timeout,
    )
    assert kbits(page.get_by_test_id(f"target-bitrate-{target}").inner_text()) > 0


def record_states(page: Page, target: str) -> None:
    """Keep each change of the target's row's ``data-state`` from now on (``window.states``)."""
    page.evaluate(
        """(id) => {
            window.states = window.states || {};
            const row = document.querySelector(`[data-testid="target-${id}"]`);
            window.states[id] = [row.dataset.state];
            const seen = window.states[id];
            new MutationObserver(() => {
                if (seen[seen.length - 1] !== row.dataset.state) seen.push(row.dataset.state);
            }).observe(row, {attributes: true, attributeFilter: ['data-state']});
        }""",
        target,
    )


def recorded_states(page: Page, target: str) -> list[str]:
    states: list[str] = page.evaluate("(id) => window.states[id]", target)
    return states


def stats_events(traffic: Traffic) -> list[dict[str, Any]]:
    events = []
    for frame in traffic.frames:
        try:
            event = json.loads(frame)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("type") == "stats":
            events.append(event)
    return events


def frames_sent(traffic: Traffic, target: str) -> list[int]:
    """The ``frames`` figure of ``target`` in each ``stats`` event the page received."""
    out = []
    for event in stats_events(traffic):
        for figures in event["stats"].get("targets", []):
            if figures["id"] == target and figures.get("frames") is not None:
                out.append(int(figures["frames"]))
    return out


def stored_key(secret_service: SecretServiceSession, entry: str) -> str | None:
    """What the private Secret Service holds for Cascade under ``entry``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DBUS_SESSION_BUS_ADDRESS", secret_service.address)
        key: str | None = SecretServiceKeyring().get_password(SERVICE_NAME, entry)
    return key


# -- 1. a profile and its ingest ----------------------------------------------------------------


def test_a_new_profile_is_created_and_run_from_setup(flow: Flow) -> None:
    show(flow.page, "setup")
    before = flow.api.get("/api/v1/profiles")
    assert PROFILE not in before["profiles"]

    flow.testid("new-profile-name").fill(PROFILE)
    flow.testid("create-profile").click()
    expect(flow.testid(f"profile-{PROFILE}")).to_have_attribute("data-active", "false")
    flow.testid(f"activate-profile-{PROFILE}").click()

    expect(flow.testid(f"profile-{PROFILE}")).to_have_attribute("data-active", "true")
    expect(flow.testid("profile-name")).to_have_text(f"Profile: {PROFILE}")
    assert flow.api.get("/api/v1/profiles")["active"] == PROFILE
    assert flow.api.get("/api/v1/status")["profile"] == PROFILE


def test_the_ingest_port_is_refused_out_of_range_and_saved_in_range(flow: Flow) -> None:
    port = flow.field("ingest.port")
    port.fill("70000")
    flow.testid("save-ingest").click()

    expect(flow.field_error("ingest.port")).to_be_visible()
    expect(port).to_have_attribute("aria-invalid", "true")
    assert [a.status for a in flow.traffic.answered("PATCH", "/api/v1/ingest")] == [422]

    port.fill(str(flow.ingest_port))
    flow.testid("save-ingest").click()

    expect(flow.field_error("ingest.port")).to_have_count(0)
    expect(flow.testid("obs-url")).to_contain_text(f":{flow.ingest_port}/")
    assert flow.api.get("/api/v1/ingest")["port"] == flow.ingest_port
    flow.streams.run(wait_listening(flow.ingest_port, timeout=15))


# -- 2. a re-encode group and its targets -------------------------------------------------------


def test_a_reencode_group_offers_only_usable_encoders_and_refuses_an_odd_width(
    flow: Flow, screenshots: Screenshots
) -> None:
    flow.testid("add-group").click()
    form = flow.testid("group-form-new")
    expect(form).to_be_visible()
    flow.field("groups[new].id").fill(GROUP)
    flow.field("groups[new].name").fill("Low bitrate")
    flow.field("groups[new].mode").select_option("reencode")

    codec = flow.field("groups[new].video.codec")
    expect(codec).to_be_visible()
    encoders = flow.api.get("/api/v1/encoders")["video"]
    assert any(e["name"] == "libx264" and e["usable"] for e in encoders), encoders
    for encoder in encoders:
        option = codec.locator(f'option[value="{encoder["name"]}"]')
        if encoder["usable"]:
            expect(option).to_be_enabled()
        else:
            # Listed, but it cannot be chosen, and the person is told why.
            expect(option).to_be_disabled()
            expect(option).to_have_attribute("title", encoder["reason"])
            expect(option).to_contain_text(encoder["reason"])

    codec.select_option("libx264")
    flow.field("groups[new].video.width").fill("7")
    flow.field("groups[new].video.height").fill(str(HEIGHT))
    flow.field("groups[new].video.fps").fill("30")
    flow.field("groups[new].video.bitrate_kbps").fill("300")
    flow.field("groups[new].video.keyframe_interval_s").fill("1")
    flow.field("groups[new].video.preset").select_option("ultrafast")
    flow.field("groups[new].audio.codec").select_option("aac")
    flow.field("groups[new].audio.bitrate_kbps").fill("64")
    flow.testid("save-group-new").click()

    width_error = flow.field_error("groups[new].video.width")
    expect(width_error).to_be_visible()
    expect(width_error).to_contain_text("even")
    expect(flow.field("groups[new].video.width")).to_be_focused()
    assert [a.status for a in flow.traffic.answered("POST", "/api/v1/groups")] == [422]
    width_error.scroll_into_view_if_needed()
    screenshots.take(flow.page, "setup-field-error-light-1280x900")

    flow.field("groups[new].video.width").fill(str(WIDTH))
    flow.testid("save-group-new").click()

    expect(flow.testid(f"setup-group-{GROUP}")).to_be_visible()
    group = next(g for g in flow.api.get("/api/v1/profile")["groups"] if g["id"] == GROUP)
    assert group["mode"] == "reencode"
    video = group["video"]
    assert (video["codec"], video["width"], video["height"]) == ("libx264", WIDTH, HEIGHT)
    assert video["bitrate_kbps"] == 300 and video["preset"] == "ultrafast"


def add_target(flow: Flow, target: str, url: str) -> None:
    flow.testid(f"add-target-{GROUP}").click()
    expect(flow.testid("target-form-new")).to_be_visible()
    flow.field("targets[new].id").fill(target)
    flow.field("targets[new].name").fill(target.title())
    flow.field("targets[new].platform").select_option("custom")
    flow.field("targets[new].url").fill(url)
    flow.testid("save-target-new").click()


def test_two_custom_targets_are_added_and_a_bad_url_is_refused(flow: Flow) -> None:
    add_target(flow, "alpha", "ftp://127.0.0.1/live")

    url_error = flow.field_error("targets[new].url")
    expect(url_error).to_be_visible()
    expect(flow.field("targets[new].url")).to_have_attribute("aria-invalid", "true")
    assert [a.status for a in flow.traffic.answered("POST", f"/groups/{GROUP}/targets")] == [422]

    flow.field("targets[new].url").fill(flow.alpha.url)
    flow.testid("save-target-new").click()
    expect(flow.testid("setup-target-alpha")).to_be_visible()

    add_target(flow, "beta", flow.beta.url)
    expect(flow.testid("setup-target-beta")).to_be_visible()

    group = next(g for g in flow.api.get("/api/v1/profile")["groups"] if g["id"] == GROUP)
    targets = {t["id"]: t for t in group["targets"]}
    assert targets["alpha"]["url"] == flow.alpha.url
    assert targets["beta"]["url"] == flow.beta.url
    assert not targets["alpha"]["has_key"] and not targets["beta"]["has_key"]
    expect(flow.testid("key-state-alpha")).to_have_text("No key")


# -- 3. a stream key ----------------------------------------------------------------------------


def test_a_stream_key_is_stored_through_the_write_only_field(
    flow: Flow, secret_service: SecretServiceSession
) -> None:
    key_field = flow.field("targets[alpha].key")
    expect(key_field).to_have_attribute("type", "password")
    expect(key_field).to_have_attribute("data-secret", "unset")

    key_field.fill(ALPHA_KEY)
    flow.testid("save-target-alpha").click()

    expect(key_field).to_have_attribute("data-secret", "set")
    expect(key_field).to_have_value("")
    expect(key_field).to_have_attribute("placeholder", re.compile("^set"))
    expect(flow.testid("key-state-alpha")).to_have_text("Key set")
    assert [a.status for a in flow.traffic.answered("PUT", "/api/v1/targets/alpha/key")] == [204]
    assert flow.api.get("/api/v1/targets/alpha")["has_key"] is True
    assert flow.api.get("/api/v1/targets/beta")["has_key"] is False
    # It is in the Secret Service, where the agent files keys, and nowhere in its files.
    assert stored_key(secret_service, f"{PROFILE}/alpha") == ALPHA_KEY
    assert stored_key(secret_service, f"{PROFILE}/beta") is None
    for path in flow.agent.config_dir.rglob("*"):
        if path.is_file() and path.suffix != ".log":
            assert ALPHA_KEY.encode() not in path.read_bytes(), path
    # Read again from the agent, the set-up says so too.
    show(flow.page, "live")
    show(flow.page, "setup")
    expect(flow.testid("key-state-alpha")).to_have_text("Key set")
    expect(flow.testid("key-state-beta")).to_have_text("No key")
    expect(flow.field("targets[alpha].key")).to_have_value("")


# -- 4. live ------------------------------------------------------------------------------------


def test_the_group_goes_live_from_the_live_view_and_its_figures_move(flow: Flow) -> None:
    show(flow.page, "live")
    expect(flow.testid(f"group-{GROUP}")).to_have_attribute("data-state", "idle")
    flow.streams.run(flow.publisher.start())
    expect(flow.testid("ingest")).to_have_attribute("data-state", "receiving", timeout=15_000)
    expect(flow.testid("ingest-resolution")).to_have_text("640×360")

    flow.testid(f"start-group-{GROUP}").click()

    expect(flow.testid(f"group-{GROUP}")).to_have_attribute("data-state", "live", timeout=20_000)
    for target in ("alpha", "beta"):
        row = flow.testid(f"target-{target}")
        expect(row).to_have_attribute("data-state", "live", timeout=20_000)
        expect(row).to_have_attribute("data-enabled", "true")
        expect(flow.testid(f"toggle-target-{target}")).to_have_attribute("aria-checked", "true")
    for target in ("alpha", "beta"):
        wait_moving(flow.page, target, more_points=3)
    assert kbits(flow.testid(f"group-bitrate-{GROUP}").inner_text()) > 0
    expect(flow.testid(f"group-encoder-fps-{GROUP}")).to_have_text(re.compile(r"^\d"))

    for target in ("alpha", "beta"):
        frames = frames_sent(flow.traffic, target)
        assert len(frames) >= 3 and frames[-1] > frames[0], (target, frames)
    assert flow.alpha.connected and flow.beta.connected


def test_every_view_is_photographed_light_and_dark_at_100_and_125_percent(
    flow: Flow, browser: Browser, screenshots: Screenshots
) -> None:
    state = flow.context.storage_state()
    overflow: dict[str, int] = {}
    foreign: list[str] = []
    for scheme in SCHEMES:
        for layout in LAYOUTS:
            tag = f"{scheme}-{layout.name}"
            signed_out = browser.new_context(
                color_scheme=scheme,
                viewport={"width": layout.width, "height": layout.height},
                device_scale_factor=layout.scale,
            )
            context = browser.new_context(
                color_scheme=scheme,
                viewport={"width": layout.width, "height": layout.height},
                device_scale_factor=layout.scale,
                storage_state=state,
            )
            try:
                watched = [Traffic.watch(signed_out), Traffic.watch(context)]
                page = signed_out.new_page()
                page.goto(f"{flow.agent.url}/")
                expect(page.get_by_test_id("view-login")).to_be_visible()
                wait_view_ready(page, "login")
                overflow[f"login-{tag}"] = horizontal_overflow(page)
                screenshots.take(page, f"login-{tag}")

                page = context.new_page()
                page.goto(f"{flow.agent.url}/#live")
                expect(page.get_by_test_id("target-beta")).to_have_attribute("data-state", "live")
                page.wait_for_function(
                    "() => Number(document.querySelector('[data-testid=\"spark-alpha\"]')"
                    ".dataset.points) >= 2"
                )
                overflow[f"live-{tag}"] = horizontal_overflow(page)
                screenshots.take(page, f"live-{tag}")
                for view in ("setup", "logs", "settings"):
                    show(page, view)
                    overflow[f"{view}-{tag}"] = horizontal_overflow(page)
                    screenshots.take(page, f"{view}-{tag}")
                for traffic in watched:
                    foreign += traffic.foreign(flow.agent.url)
            finally:
                context.close()
                signed_out.close()

    assert {name: px for name, px in overflow.items() if px > 0} == {}, "horizontal scroll"
    assert foreign == []
    assert len([p for p in screenshots.taken if p.stem.endswith(("0x900", "125pct"))]) >= 20


# -- 5. one target off and on; a server down ----------------------------------------------------


def test_switching_a_target_off_stops_only_it(flow: Flow) -> None:
    page = flow.page
    show(page, "live")
    record_states(page, "alpha")

    flow.testid("toggle-target-beta").click()

    beta = flow.testid("target-beta")
    expect(beta).to_have_attribute("data-state", "disabled")
    expect(beta).to_have_attribute("data-enabled", "false")
    expect(flow.testid("toggle-target-beta")).to_have_attribute("aria-checked", "false")
    expect(flow.testid("target-bitrate-beta")).to_have_text("–")
    expect(flow.testid("target-uptime-beta")).to_have_text("–")
    flow.streams.run(flow.beta.wait_sessions(1))  # beta's platform saw its connection end
    # The other target carries on: its figures keep moving, its platform keeps receiving.
    wait_moving(page, "alpha", more_points=3)
    assert flow.alpha.connected, "alpha's connection ended with beta's"
    assert flow.api.get("/api/v1/targets/beta")["enabled"] is False
    assert flow.api.get("/api/v1/targets/alpha")["state"] == "live"

    flow.testid("toggle-target-beta").click()

    expect(beta).to_have_attribute("data-state", "live", timeout=15_000)
    expect(flow.testid("toggle-target-beta")).to_have_attribute("aria-checked", "true")
    wait_moving(page, "beta")
    assert recorded_states(page, "alpha") == ["live"], "alpha left 'live' while beta toggled"
    assert len(flow.alpha.sessions) == 0 and flow.alpha.connected


def test_a_target_whose_server_goes_down_shows_its_error(
    flow: Flow, screenshots: Screenshots
) -> None:
    page = flow.page
    record_states(page, "beta")
    flow.streams.run(flow.alpha.stop())  # alpha's platform has an outage

    alpha = flow.testid("target-alpha")
    expect(alpha).to_have_attribute("data-state", re.compile("^(retrying|failed)$"), timeout=20_000)
    expect(flow.testid("target-state-alpha")).to_have_text(re.compile("Retrying|Failed"))
    expect(flow.testid("target-reason-alpha")).to_be_visible()
    expect(flow.testid("target-reason-alpha")).not_to_have_text("")
    expect(flow.testid("target-error-alpha")).to_contain_text("Last error:", timeout=15_000)
    expect(page.locator('[data-testid="alert"][data-source="target:alpha"]')).to_be_visible()
    expect(flow.testid(f"group-{GROUP}")).to_have_attribute("data-state", "degraded")
    screenshots.take(page, "live-target-down-light-1280x900")
    # Beta does not notice.
    wait_moving(page, "beta")
    assert recorded_states(page, "beta") == ["live"]

    # What alpha's platform received before the outage: one connection, through beta's
    # toggles, with no hole in the video, encoded as the group says.
    (received,) = flow.alpha.sessions
    packets = video_packets(received)
    assert len(packets) >= 90, len(packets)
    assert max_gap(packets) < 1.0, "alpha's video has a gap"
    video = stream(probe(received), "video")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", WIDTH, HEIGHT)


# -- 6. logs and settings -----------------------------------------------------------------------


def test_the_logs_show_lines_and_filter_by_target(flow: Flow) -> None:
    page = flow.page
    show(page, "logs")
    lines = page.get_by_test_id("log-line")
    expect(page.locator('[data-testid="log-line"][data-source="agent"]').first).to_be_attached()

    page.get_by_test_id("log-source").select_option("target:alpha")

    expect(lines.first).to_have_attribute("data-source", "target:alpha")
    page.wait_for_function(
        """() => {
            const lines = [...document.querySelectorAll('[data-testid="log-line"]')];
            return lines.length > 0 && lines.every((l) => l.dataset.source === 'target:alpha');
        }"""
    )
    assert (
        page.locator('[data-testid="log-line"][data-level="error"]').count()
        + page.locator('[data-testid="log-line"][data-level="warning"]').count()
        > 0
    ), "alpha's failure left no warning or error line"
    assert flow.traffic.answered("GET", "/api/v1/logs")[-1].url.endswith("source=target%3Aalpha")

    page.get_by_test_id("log-level").select_option("error")
    expect(page.locator('[data-testid="log-line"][data-level="warning"]:visible')).to_have_count(0)

    page.get_by_test_id("log-source").select_option("")
    expect(page.locator('[data-testid="log-line"][data-source="agent"]').first).to_be_attached()


def test_settings_reveal_the_agents_token_and_probe_ffmpeg_again(flow: Flow) -> None:
    page = flow.page
    show(page, "settings")
    value = page.get_by_test_id("token-value")
    expect(value).to_have_attribute("data-revealed", "false")
    expect(value).not_to_have_text(TOKEN)

    page.get_by_test_id("reveal-token").click()

    expect(value).to_have_attribute("data-revealed", "true")
    expect(value).to_have_text(TOKEN)
    answer = flow.traffic.answered("GET", "/api/v1/token")[-1]
    assert answer.headers.get("cache-control") == "no-store"
    page.get_by_test_id("reveal-token").click()
    expect(value).to_have_attribute("data-revealed", "false")
    expect(value).not_to_have_text(TOKEN)

    probed = len(flow.traffic.answered("POST", "/api/v1/encoders/probe"))
    page.get_by_test_id("reprobe").click()
    expect(page.get_by_test_id("reprobe")).to_have_text("Re-probe FFmpeg", timeout=30_000)
    expect(page.get_by_test_id("reprobe")).not_to_have_attribute("aria-busy", "true")
    answers = flow.traffic.answered("POST", "/api/v1/encoders/probe")
    assert len(answers) == probed + 1 and answers[-1].status == 200, answers[-1:]
    expect(page.get_by_test_id("encoder-libx264")).to_have_attribute("data-usable", "true")
    expect(page.get_by_test_id("error-banner")).to_be_hidden()


# -- 7. stopping, and what never happened -------------------------------------------------------


def test_stopping_leaves_the_platforms_with_whole_streams_and_no_key_anywhere(flow: Flow) -> None:
    page = flow.page
    show(page, "live")
    flow.testid(f"stop-group-{GROUP}").click()
    expect(flow.testid(f"group-{GROUP}")).to_have_attribute("data-state", "idle", timeout=20_000)
    expect(flow.testid("target-beta")).to_have_attribute("data-state", "idle")
    flow.streams.run(flow.beta.wait_sessions(2))

    # Beta was switched off and on: a second connection, starting at a keyframe.
    first, second = flow.beta.sessions
    again = video_packets(second)
    assert again and again[0][1], "the re-enabled target did not start at a keyframe"
    for received in (first, second):
        video = stream(probe(received), "video")
        assert (video["codec_name"], video["width"], video["height"]) == ("h264", WIDTH, HEIGHT)
        assert stream(probe(received), "audio")["codec_name"] == "aac"

    # Nothing but the agent was asked for anything; the page broke none of its own rules.
    assert flow.traffic.foreign(flow.agent.url) == []
    assert flow.traffic.unreadable == []
    assert flow.traffic.page_errors == []
    assert [m for m in flow.traffic.console if "Content Security Policy" in m] == []

    # The stream key went in through its field and never came back out.
    dom = page.content()
    values = page.evaluate(
        "() => [...document.querySelectorAll('input, textarea')].map((e) => e.value).join('\\n')"
    )
    assert ALPHA_KEY not in dom and ALPHA_KEY not in values, "the key is in the page"
    assert ALPHA_KEY not in flow.traffic.everything(), "the agent sent the key to the page"
    log_files = sorted(flow.agent.config_dir.rglob("*.log*"))
    assert flow.agent.config_dir / "logs" / "cascade.log" in log_files
    logs = "\n".join(p.read_text(errors="replace") for p in log_files)
    assert "target:alpha" in logs and ALPHA_KEY not in logs, "the key is in the agent's log"
