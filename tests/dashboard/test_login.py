"""Signing in to the dashboard in a real browser: the one-time link, the token form, signing out.

The agent runs as ``cascade run --headless`` with a known token; Chromium opens its page
like a person would.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from agent.api.client import ApiClient
from tests.agent_process import AgentProcess
from tests.dashboard.conftest import AgentFactory, bearer
from tests.dashboard.harness import SESSION_COOKIE, Traffic, login_link

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

TOKEN = "dashboard-login-token-5b0d1c93e7a2"


@pytest.fixture(scope="module")
def agent(start_agent: AgentFactory) -> AgentProcess:
    return start_agent(TOKEN)


@pytest.fixture(scope="module")
def api(agent: AgentProcess) -> ApiClient:
    return bearer(agent, TOKEN)


def test_a_login_link_signs_the_browser_in_and_works_only_once(
    browser: Browser, agent: AgentProcess, api: ApiClient
) -> None:
    context = browser.new_context()
    traffic = Traffic.watch(context)
    page = context.new_page()
    link = login_link(api)
    assert link.startswith(f"{agent.url}/login?code=")

    page.goto(link)

    expect(page.get_by_test_id("view-live")).to_be_visible()
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "open")
    expect(page.get_by_test_id("nav-setup")).to_be_visible()
    assert page.url == f"{agent.url}/#live"
    (cookie,) = [c for c in context.cookies() if c["name"] == SESSION_COOKIE]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["expires"] == -1, "the session cookie must end with the browser session"
    # The code is not left in the address bar or the history.
    assert "code=" not in page.url
    assert page.evaluate("() => document.cookie") == "", "the page's script can read the cookie"

    # The same link a second time, in a browser that is not signed in: refused, and said so.
    other = browser.new_context()
    stranger = other.new_page()
    stranger.goto(link)
    expect(stranger.get_by_test_id("view-login")).to_be_visible()
    expect(stranger.get_by_test_id("login-expired")).to_be_visible()
    expect(stranger.get_by_test_id("nav-live")).to_be_hidden()
    assert not [c for c in other.cookies() if c["name"] == SESSION_COOKIE]
    other.close()

    assert traffic.foreign(agent.url) == []
    assert traffic.answered("GET", "/api/v1/session"), "the page did not ask for its session"
    assert traffic.unreadable == []
    context.close()


def test_the_token_form_signs_in_and_a_wrong_token_is_refused(
    browser: Browser, agent: AgentProcess
) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{agent.url}/#setup")
    expect(page.get_by_test_id("view-login")).to_be_visible()
    expect(page.get_by_test_id("login-expired")).to_be_hidden()
    token_field = page.get_by_test_id("login-token")
    expect(token_field).to_be_focused()
    expect(token_field).to_have_attribute("type", "password")

    token_field.fill("not-the-token-at-all-0000")
    page.get_by_test_id("login-submit").click()

    error = page.locator('[data-testid="field-error"][data-for="token"]')
    expect(error).to_contain_text("not the API token")
    expect(token_field).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("view-login")).to_be_visible()
    assert not [c for c in context.cookies() if c["name"] == SESSION_COOKIE]

    token_field.fill(TOKEN)
    page.get_by_test_id("login-submit").click()

    # Signed in, on the view that was asked for before the form came up.
    expect(page.get_by_test_id("view-setup")).to_be_visible()
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "open")
    expect(error).to_have_count(0)
    assert [c for c in context.cookies() if c["name"] == SESSION_COOKIE]
    assert page.evaluate("() => document.getElementById('login-token').value") == ""

    # Signing out ends the session on the agent too: the old cookie no longer opens anything.
    cookie = next(c for c in context.cookies() if c["name"] == SESSION_COOKIE)
    replay = browser.new_context()
    replay.add_cookies([{"name": cookie["name"], "value": cookie["value"], "url": agent.url}])
    answer = replay.request.get(f"{agent.url}/api/v1/session")
    assert answer.status == 200 and answer.json()["via"] == "session", answer.text()
    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("view-login")).to_be_visible()
    expect(page.get_by_test_id("nav-live")).to_be_hidden()
    answer = replay.request.get(f"{agent.url}/api/v1/session")
    assert answer.status == 401, answer.text()
    replay.close()
    context.close()
