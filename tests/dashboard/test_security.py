"""The dashboard under the API's security rules, in a real browser.

- The agent's own page carries its Content-Security-Policy and the other security headers,
  and runs under them without a single violation.
- A page from another origin (another port of 127.0.0.1, so the browser even sends it the
  dashboard's SameSite=Strict cookie) cannot drive the agent, neither with the token nor with
  the cookie, neither over HTTP nor over the WebSocket, and cannot frame the dashboard: every
  attempt is refused and nothing changes.
- A page reached under another name (DNS rebinding) gets nothing: a foreign Host is refused.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from agent.api.client import ApiClient
from agent.api.pages import CSP
from tests.agent_process import AgentProcess
from tests.dashboard.conftest import AgentFactory, bearer
from tests.dashboard.harness import (
    REBIND_HOST,
    SESSION_COOKIE,
    ForeignSite,
    Traffic,
    Wire,
    open_dashboard,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

TOKEN = "dashboard-security-token-41c7e09b2d58"

#: A page of another web site that knows the agent's address and even its token, and tries
#: everything a page can: requests with the token, requests riding on the dashboard's cookie
#: (same site: 127.0.0.1), the WebSocket with either, signing in with the token, framing.
ATTACK_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Another site</title></head>
<body><p>Another site</p><script src="/attack.js"></script></body></html>
"""
ATTACK_SCRIPT = r"""
const params = new URLSearchParams(location.search);
const agent = params.get('agent');
const token = params.get('token');
const wsAgent = agent.replace('http://', 'ws://');
window.results = {};

async function attempt(name, run) {
  try {
    window.results[name] = await run();
  } catch (error) {
    window.results[name] = `refused: ${error.name}`;
  }
}

function socket(url) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => resolve('opened');
    ws.onmessage = (m) => resolve(`message: ${m.data.slice(0, 40)}`);
    ws.onerror = () => resolve('refused: error');
    setTimeout(() => resolve('refused: timeout'), 8000);
  });
}

const bearer = { Authorization: `Bearer ${token}` };
const cookie = { mode: 'no-cors', credentials: 'include' };

(async () => {
  await attempt('start with token', () =>
    fetch(`${agent}/api/v1/groups/main/start`, { method: 'POST', headers: bearer })
      .then((r) => `answered ${r.status}`));
  await attempt('status with token', () =>
    fetch(`${agent}/api/v1/status`, { headers: bearer }).then((r) => r.text()));
  await attempt('start with cookie', () =>
    fetch(`${agent}/api/v1/groups/main/start`, { method: 'POST', ...cookie })
      .then((r) => r.type));
  await attempt('arm with cookie', () =>
    fetch(`${agent}/api/v1/groups/main/arm`, { method: 'POST', ...cookie }).then((r) => r.type));
  await attempt('rotate with cookie', () =>
    fetch(`${agent}/api/v1/token/rotate`, { method: 'POST', ...cookie }).then((r) => r.type));
  await attempt('status with cookie', () =>
    fetch(`${agent}/api/v1/status`, { credentials: 'include' }).then((r) => r.text()));
  await attempt('token with cookie', () =>
    fetch(`${agent}/api/v1/token`, { credentials: 'include' }).then((r) => r.text()));
  await attempt('login with token', () =>
    fetch(`${agent}/login`, {
      method: 'POST', ...cookie, body: JSON.stringify({ token }),
    }).then((r) => r.type));
  await attempt('events with token', () => socket(`${wsAgent}/api/v1/events?token=${token}`));
  await attempt('events with cookie', () => socket(`${wsAgent}/api/v1/events`));
  const frame = document.createElement('iframe');
  frame.src = `${agent}/`;
  frame.title = 'the dashboard, framed';
  await new Promise((resolve) => {
    frame.onload = resolve;
    document.body.append(frame);
    setTimeout(resolve, 8000);
  });
  window.done = true;
})();
"""


@pytest.fixture(scope="module")
def agent(start_agent: AgentFactory) -> AgentProcess:
    return start_agent(TOKEN)


@pytest.fixture(scope="module")
def api(agent: AgentProcess) -> ApiClient:
    return bearer(agent, TOKEN)


@pytest.fixture(scope="module")
def foreign_site() -> Iterator[ForeignSite]:
    files = {
        "/": ("text/html; charset=utf-8", ATTACK_PAGE),
        "/attack.js": ("text/javascript; charset=utf-8", ATTACK_SCRIPT),
    }
    with ForeignSite(files) as site:
        yield site


def raw_request(
    port: int, method: str, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """One request with exactly these headers (``Host`` included); the status and JSON."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


def test_the_dashboard_is_served_with_its_security_headers_and_breaks_none_of_them(
    browser: Browser, agent: AgentProcess, api: ApiClient
) -> None:
    context = browser.new_context()
    traffic = Traffic.watch(context)
    page = context.new_page()
    answer = page.goto(f"{agent.url}/")
    assert answer is not None and answer.status == 200
    headers = answer.headers
    assert headers["content-security-policy"] == CSP
    assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-cache"
    expect(page.get_by_test_id("view-login")).to_be_visible()

    page.close()
    page = open_dashboard(context, api, "settings")

    agent_answers = [a for a in traffic.answers if a.url.startswith(agent.url)]
    assert agent_answers
    for received in agent_answers:
        assert "access-control-allow-origin" not in received.headers, received.url
        if received.status != 303:
            assert received.headers.get("content-security-policy") == CSP, received.url
    # The page keeps to its own policy: no violation, no uncaught error.
    assert [m for m in traffic.console if "Content Security Policy" in m] == []
    assert traffic.page_errors == []
    assert traffic.foreign(agent.url) == []
    context.close()


def test_a_page_of_another_origin_cannot_drive_the_agent(
    browser: Browser, agent: AgentProcess, api: ApiClient, foreign_site: ForeignSite
) -> None:
    context = browser.new_context()
    traffic = Traffic.watch(context)
    # The person is signed in to the dashboard in this browser...
    dashboard = open_dashboard(context, api)
    (cookie,) = [c for c in context.cookies() if c["name"] == SESSION_COOKIE]
    # ...and opens another site, which knows the agent's address and even its token.
    page = context.new_page()
    wire = Wire(page)
    page.goto(f"{foreign_site.url}/?agent={agent.url}&token={TOKEN}")
    page.wait_for_function("() => window.done === true", timeout=20_000)
    results: dict[str, str] = page.evaluate("() => window.results")

    # The page could read nothing and open nothing.
    assert set(results) == {
        "start with token",
        "status with token",
        "start with cookie",
        "arm with cookie",
        "rotate with cookie",
        "status with cookie",
        "token with cookie",
        "login with token",
        "events with token",
        "events with cookie",
    }
    for name in ("start with token", "status with token", "status with cookie"):
        assert results[name].startswith("refused"), (name, results[name])
    assert results["token with cookie"].startswith("refused"), results
    for name in ("events with token", "events with cookie"):
        assert results[name] == "refused: error", (name, results[name])
        url = "/api/v1/events" + (f"?token={TOKEN}" if "token" in name else "")
        assert any(url in m and "response code: 403" in m for m in traffic.console), name

    # On the wire: everything the agent answered was a refusal. The token could not even be
    # sent (its preflight was refused); the cookie was sent, with the foreign Origin.
    framed_page = (f"{agent.url}/", "GET")
    exchanges = [
        e for e in wire.to(agent.url) if e.kind == "http" and (e.url, e.method) != framed_page
    ]
    answered = {
        (e.method, e.url.removeprefix(agent.url)): e.status
        for e in exchanges
        if e.status is not None
    }
    assert answered == {
        ("OPTIONS", "/api/v1/groups/main/start"): 403,
        ("OPTIONS", "/api/v1/status"): 403,
        ("POST", "/api/v1/groups/main/start"): 403,
        ("POST", "/api/v1/groups/main/arm"): 403,
        ("POST", "/api/v1/token/rotate"): 403,
        ("GET", "/api/v1/status"): 403,
        ("GET", "/api/v1/token"): 403,
        ("POST", "/login"): 403,
    }, answered
    held_back = [e for e in exchanges if e.status is None]
    assert sorted((e.method, e.url.removeprefix(agent.url)) for e in held_back) == [
        ("GET", "/api/v1/status"),
        ("POST", "/api/v1/groups/main/start"),
    ], held_back
    assert not [e for e in exchanges if "authorization" in e.sent], "the token was sent"
    for e in exchanges:
        if e.status is None:
            continue
        assert e.sent["origin"] == foreign_site.url, e
        if e.method != "OPTIONS":
            assert f"{SESSION_COOKIE}=" in e.sent.get("cookie", ""), e
    # Sent again exactly so, the agent says why: the Origin is not its own.
    start = next(
        e for e in exchanges if e.method == "POST" and e.sent and e.url.endswith("/main/start")
    )
    status, body = raw_request(
        agent.port,
        "POST",
        "/api/v1/groups/main/start",
        {k: start.sent[k] for k in ("host", "origin", "cookie")},
    )
    assert (status, body["error"]["code"]) == (403, "forbidden_origin")
    # The framed dashboard never loaded (frame-ancestors 'none', X-Frame-Options: DENY).
    (framed,) = [f for f in page.frames if f != page.main_frame]
    assert framed.url.startswith("chrome-error:"), framed.url
    assert framed.locator("#login-form").count() == 0
    assert any("frame-ancestors" in m for m in traffic.console), traffic.console

    # Nothing changed: the group was not started or armed, the token is the same, the
    # session the person had is the one they still have, and it still works.
    main = api.get("/api/v1/groups/main")
    assert main["state"] == "idle" and main["armed"] is False, main
    assert api.get("/api/v1/session")["via"] == "token"  # TOKEN still the agent's token
    assert [c for c in context.cookies() if c["name"] == SESSION_COOKIE] == [cookie]
    dashboard.reload()
    expect(dashboard.get_by_test_id("connection")).to_have_attribute("data-state", "open")
    expect(dashboard.get_by_test_id("group-main")).to_have_attribute("data-state", "idle")
    context.close()


def test_a_foreign_host_name_gets_nothing_from_the_agent(
    browser: Browser, agent: AgentProcess
) -> None:
    # A browser on a page whose name was re-pointed at 127.0.0.1 (DNS rebinding).
    context = browser.new_context()
    traffic = Traffic.watch(context)
    page = context.new_page()
    answer = page.goto(f"http://{REBIND_HOST}:{agent.port}/")
    assert answer is not None and answer.status == 403
    assert json.loads(answer.text())["error"]["code"] == "forbidden_host"
    assert [u for u in traffic.requests if "/static/" in u] == [], "the page's scripts loaded"
    answer = page.goto(f"http://{REBIND_HOST}:{agent.port}/api/v1/session")
    assert answer is not None and answer.status == 403
    context.close()

    # The same from any client, with or without the token.
    for headers in (
        {"Host": f"evil.example:{agent.port}"},
        {"Host": f"evil.example:{agent.port}", "Authorization": f"Bearer {TOKEN}"},
        {"Host": f"127.0.0.1:{agent.port + 1}", "Authorization": f"Bearer {TOKEN}"},
    ):
        status, body = raw_request(agent.port, "GET", "/api/v1/status", headers)
        assert (status, body["error"]["code"]) == (403, "forbidden_host"), headers
    status, body = raw_request(agent.port, "GET", "/", {"Host": f"evil.example:{agent.port}"})
    assert (status, body["error"]["code"]) == (403, "forbidden_host")
