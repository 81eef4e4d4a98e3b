"""Logging in to the dashboard: one-time links, the session cookie, and what it may do.

:class:`Sessions` is unit-tested with a fake clock; the app is then checked to trade codes
and the token for cookies with the right flags, to accept the cookie in place of the token,
to refuse a change made with the cookie unless it comes from the agent's own page (CSRF),
and to refuse other pages whatever they hold.
"""

from __future__ import annotations

import asyncio
import re
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientResponse, WSServerHandshakeError

from agent.api.app import SESSION_COOKIE
from agent.api.security import Guard
from agent.api.server import ApiServer
from agent.control import Control
from agent.core.agent import Agent
from agent.dashboard.sessions import (
    CODE_LIFETIME,
    MAX_CODES,
    MAX_SESSIONS,
    SESSION_IDLE,
    Sessions,
)
from agent.paths import config_dir
from agent.store.profiles import ProfileStore
from tests.api.conftest import Api, Site

V1 = "/api/v1"
EVIL = "http://evil.example"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def set_cookie(resp: ClientResponse) -> SimpleCookie | None:
    """The answer's Set-Cookie header, parsed; None when there is none."""
    headers = resp.headers.getall("Set-Cookie", [])
    assert len(headers) <= 1, headers
    if not headers:
        return None
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(headers[0])
    return cookie


async def login(site: Site) -> str:
    """Follow a fresh login link; the session id the cookie holds."""
    code = site.dashboard.sessions.new_code()
    resp = await site.client.get(f"/login?code={code}", allow_redirects=False)
    assert resp.status == 303, await resp.text()
    cookie = set_cookie(resp)
    assert cookie is not None
    return cookie[SESSION_COOKIE].value


def error_code(body: Any) -> str:
    return str(body["error"]["code"])


# -- Sessions alone -------------------------------------------------------------------------


class TestSessions:
    def test_a_code_opens_one_session_once(self) -> None:
        sessions = Sessions()
        code = sessions.new_code()
        first = sessions.redeem(code)
        assert first is not None and sessions.check(first)
        assert sessions.redeem(code) is None

    def test_a_code_works_until_its_lifetime_ends(self) -> None:
        clock = FakeClock()
        sessions = Sessions(clock=clock)
        early, late = sessions.new_code(), sessions.new_code()
        clock.now += CODE_LIFETIME - 1
        assert sessions.redeem(early) is not None
        clock.now += 2
        assert sessions.redeem(late) is None

    @pytest.mark.parametrize("code", [None, "", "not-a-code"])
    def test_anything_but_a_code_opens_nothing(self, code: str | None) -> None:
        sessions = Sessions()
        sessions.new_code()
        assert sessions.redeem(code) is None
        assert sessions.open_sessions == 0

    def test_codes_and_sessions_are_long_random_and_distinct(self) -> None:
        sessions = Sessions()
        made = {sessions.new_code() for _ in range(20)} | {sessions.open() for _ in range(20)}
        assert len(made) == 40
        assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", value) for value in made)

    def test_codes_kept_are_bounded_the_oldest_dropped(self) -> None:
        sessions = Sessions()
        codes = [sessions.new_code() for _ in range(MAX_CODES + 5)]
        assert sessions.pending_codes == MAX_CODES
        assert sessions.redeem(codes[0]) is None
        assert sessions.redeem(codes[-1]) is not None

    def test_sessions_kept_are_bounded_the_least_recently_used_dropped(self) -> None:
        sessions = Sessions()
        first, second = sessions.open(), sessions.open()
        assert sessions.check(first)  # used: now the most recent
        for _ in range(MAX_SESSIONS - 1):
            sessions.open()
        assert sessions.open_sessions == MAX_SESSIONS
        assert sessions.check(first)
        assert not sessions.check(second)

    def test_a_session_ends_after_being_idle_and_use_keeps_it(self) -> None:
        clock = FakeClock()
        sessions = Sessions(clock=clock)
        used, idle = sessions.open(), sessions.open()
        clock.now += SESSION_IDLE - 10
        assert sessions.check(used)
        clock.now += 20
        assert sessions.check(used)
        assert not sessions.check(idle)

    def test_a_closed_session_is_refused(self) -> None:
        sessions = Sessions()
        session = sessions.open()
        sessions.close(session)
        sessions.close(session)  # twice is harmless
        assert not sessions.check(session)


class TestOwnOrigin:
    @pytest.mark.parametrize(
        ("bind", "origin"),
        [
            ("127.0.0.1", "http://127.0.0.1:47830"),
            ("0.0.0.0", "http://127.0.0.1:47830"),
            ("::1", "http://[::1]:47830"),
            ("192.168.1.5", "http://192.168.1.5:47830"),
            ("fd00::5", "http://[fd00::5]:47830"),
        ],
    )
    def test_the_link_address_is_one_the_server_listens_on(self, bind: str, origin: str) -> None:
        guard = Guard("t" * 20, port=47830, bind=bind)
        assert guard.own_origin == origin
        assert guard.origin_is_own(origin)

    @pytest.mark.parametrize("origin", [None, "", "null", EVIL, "http://127.0.0.1:47831"])
    def test_a_missing_or_other_origin_is_not_own(self, origin: str | None) -> None:
        assert not Guard("t" * 20, port=47830).origin_is_own(origin)


# -- login links ----------------------------------------------------------------------------


class TestLoginLink:
    async def test_the_api_makes_a_one_time_link_to_this_agent(self, site: Site) -> None:
        resp = await site.client.post(f"{V1}/dashboard/link", headers=site.bearer())
        body = await resp.json()
        assert resp.status == 200, body
        assert body["expires_in"] == CODE_LIFETIME == 60
        match = re.fullmatch(rf"{site.origin}/login\?code=([A-Za-z0-9_-]{{43}})", body["url"])
        assert match, body["url"]
        assert site.dashboard.sessions.redeem(match.group(1)) is not None

    async def test_making_a_link_needs_the_token(self, site: Site) -> None:
        resp = await site.client.post(f"{V1}/dashboard/link")
        assert resp.status == 401

    async def test_the_link_sets_a_strict_http_only_session_cookie(self, site: Site) -> None:
        code = site.dashboard.sessions.new_code()
        resp = await site.client.get(f"/login?code={code}", allow_redirects=False)
        assert resp.status == 303
        assert resp.headers["Location"] == "/#live"
        assert resp.headers["Cache-Control"] == "no-store"
        cookie = set_cookie(resp)
        assert cookie is not None
        morsel = cookie[SESSION_COOKIE]
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", morsel.value)
        assert morsel["httponly"] is True
        assert morsel["samesite"] == "Strict"
        assert morsel["path"] == "/"
        assert not morsel["max-age"] and not morsel["expires"], "a browser-session cookie"
        assert site.dashboard.sessions.check(morsel.value)

    async def test_a_used_link_leads_to_the_login_view_without_a_cookie(self, site: Site) -> None:
        code = site.dashboard.sessions.new_code()
        await site.client.get(f"/login?code={code}", allow_redirects=False)
        again = await site.client.get(f"/login?code={code}", allow_redirects=False)
        assert again.status == 303
        assert again.headers["Location"] == "/#login"
        assert set_cookie(again) is None

    async def test_an_expired_link_leads_to_the_login_view(self, site: Site) -> None:
        clock = FakeClock()
        site.dashboard.sessions = Sessions(clock=clock)
        code = site.dashboard.sessions.new_code()
        clock.now += CODE_LIFETIME + 1
        resp = await site.client.get(f"/login?code={code}", allow_redirects=False)
        assert resp.headers["Location"] == "/#login"
        assert set_cookie(resp) is None

    @pytest.mark.parametrize("query", ["", "?code=", "?code=guess", "?other=1"])
    async def test_no_or_a_made_up_code_leads_to_the_login_view(
        self, site: Site, query: str
    ) -> None:
        resp = await site.client.get(f"/login{query}", allow_redirects=False)
        assert (resp.status, resp.headers["Location"]) == (303, "/#login")
        assert set_cookie(resp) is None

    async def test_the_tray_gets_a_working_link_from_the_server_in_its_own_thread(
        self,
    ) -> None:
        cfg = config_dir()
        control = Control(Agent(cfg), ProfileStore(cfg), secrets=_none, keys_for=_no_keys)
        server = ApiServer(control, token="t" * 24, port=0)
        await server.start()
        try:
            link = await asyncio.to_thread(server.dashboard.login_link)  # the tray's thread
            assert link.startswith(f"http://127.0.0.1:{server.port}/login?code=")
            jar = aiohttp.DummyCookieJar()
            async with (
                aiohttp.ClientSession(cookie_jar=jar) as http,
                http.get(link, allow_redirects=False) as resp,
            ):
                assert resp.status == 303
                assert resp.headers["Location"] == "/#live"
                cookie = set_cookie(resp)
            assert cookie is not None
            assert server.dashboard.sessions.check(cookie[SESSION_COOKIE].value)
        finally:
            await server.stop()


def _none() -> Any:
    raise AssertionError("no stream keys here")


def _no_keys(name: str) -> Any:
    return lambda target: None


# -- logging in with the token, logging out -------------------------------------------------


class TestTokenLogin:
    async def test_the_right_token_from_the_own_page_opens_a_session(self, site: Site) -> None:
        resp = await site.client.post(
            "/login", json={"token": site.token}, headers={"Origin": site.origin}
        )
        assert resp.status == 204, await resp.text()
        cookie = set_cookie(resp)
        assert cookie is not None
        morsel = cookie[SESSION_COOKIE]
        assert morsel["httponly"] is True and morsel["samesite"] == "Strict"
        status = await site.client.get(f"{V1}/status", headers=site.with_session(morsel.value))
        assert status.status == 200

    @pytest.mark.parametrize(
        "body",
        [{"token": "wrong-token-0000000000"}, {"token": 12}, {}],
        ids=["wrong", "not-text", "missing"],
    )
    async def test_anything_but_the_token_is_refused_without_a_cookie(
        self, site: Site, body: dict[str, Any]
    ) -> None:
        resp = await site.client.post("/login", json=body, headers={"Origin": site.origin})
        assert resp.status == 401
        assert error_code(await resp.json()) == "unauthorized"
        assert set_cookie(resp) is None

    @pytest.mark.parametrize("origin", [None, EVIL], ids=["no-origin", "foreign"])
    async def test_only_the_own_page_may_log_in(self, site: Site, origin: str | None) -> None:
        headers = {"Origin": origin} if origin else {}
        resp = await site.client.post("/login", json={"token": site.token}, headers=headers)
        assert resp.status == 403
        assert error_code(await resp.json()) == "forbidden_origin"
        assert set_cookie(resp) is None

    async def test_wrong_tokens_are_slowed_down_like_the_apis(self, site: Site) -> None:
        for _ in range(3):  # the free failures
            await site.client.post("/login", json={"token": "x"}, headers={"Origin": site.origin})
        assert site.guard.failed() > 0  # the next wrong one would wait

    async def test_logging_out_ends_the_session_and_clears_the_cookie(self, site: Site) -> None:
        session = await login(site)
        resp = await site.client.post(
            "/logout", headers=site.with_session(session, Origin=site.origin)
        )
        assert resp.status == 204
        cookie = set_cookie(resp)
        assert cookie is not None
        assert cookie[SESSION_COOKIE].value == ""
        assert cookie[SESSION_COOKIE]["max-age"] == "0"
        after = await site.client.get(f"{V1}/status", headers=site.with_session(session))
        assert after.status == 401


# -- what the cookie may do -----------------------------------------------------------------


class TestSessionCookie:
    async def test_it_reads_in_place_of_the_token_without_an_origin(self, site: Site) -> None:
        session = await login(site)
        resp = await site.client.get(f"{V1}/status", headers=site.with_session(session))
        assert resp.status == 200
        assert (await resp.json())["profile"] == "studio"

    async def test_session_says_how_the_caller_got_in(self, site: Site) -> None:
        session = await login(site)
        by_cookie = await site.client.get(f"{V1}/session", headers=site.with_session(session))
        by_token = await site.client.get(f"{V1}/session", headers=site.bearer())
        nobody = await site.client.get(f"{V1}/session")
        assert await by_cookie.json() == {"authenticated": True, "via": "session"}
        assert await by_token.json() == {"authenticated": True, "via": "token"}
        assert nobody.status == 401

    async def test_an_ended_session_is_a_401_that_says_so(self, site: Site) -> None:
        resp = await site.client.get(f"{V1}/session", headers=site.with_session("made-up"))
        body = await resp.json()
        assert resp.status == 401
        assert "session has ended" in body["error"]["message"]

    async def test_a_wrong_token_is_not_rescued_by_a_good_cookie(self, site: Site) -> None:
        session = await login(site)
        headers = site.with_session(session, Authorization="Bearer wrong-token-000000")
        resp = await site.client.get(f"{V1}/status", headers=headers)
        assert resp.status == 401

    async def test_a_change_from_the_own_page_is_accepted(self, site: Site) -> None:
        session = await login(site)
        resp = await site.client.post(
            f"{V1}/show", headers=site.with_session(session, Origin=site.origin)
        )
        assert resp.status == 200
        assert await resp.json() == {"ok": True}

    @pytest.mark.parametrize(
        ("method", "path"),
        [("POST", f"{V1}/show"), ("PATCH", f"{V1}/settings"), ("DELETE", f"{V1}/profiles/x")],
    )
    async def test_a_change_without_an_origin_is_refused(
        self, site: Site, method: str, path: str
    ) -> None:
        """CSRF: a form or a script elsewhere cannot use the browser's cookie to act."""
        session = await login(site)
        resp = await site.client.request(
            method, path, json={"notifications": False}, headers=site.with_session(session)
        )
        assert resp.status == 403
        assert error_code(await resp.json()) == "forbidden_origin"

    @pytest.mark.parametrize("method", ["GET", "POST"])
    async def test_a_foreign_origin_is_refused_with_the_cookie(
        self, site: Site, method: str
    ) -> None:
        session = await login(site)
        path = f"{V1}/status" if method == "GET" else f"{V1}/show"
        resp = await site.client.request(
            method, path, headers=site.with_session(session, Origin=EVIL)
        )
        assert resp.status == 403
        assert error_code(await resp.json()) == "forbidden_origin"

    @pytest.mark.parametrize("path", [f"{V1}/show", f"{V1}/dashboard/link"])
    async def test_a_foreign_origin_is_refused_with_the_token_too(
        self, site: Site, path: str
    ) -> None:
        resp = await site.client.post(path, headers=site.bearer(Origin=EVIL))
        assert resp.status == 403
        assert error_code(await resp.json()) == "forbidden_origin"

    async def test_the_websocket_takes_the_cookie_from_the_own_page(self, site: Site) -> None:
        session = await login(site)
        ws = await site.client.ws_connect(
            f"{V1}/events", headers=site.with_session(session, Origin=site.origin)
        )
        try:
            hello = await ws.receive_json(timeout=5)
        finally:
            await ws.close()
        assert hello["type"] == "hello"
        assert hello["status"]["profile"] == "studio"

    @pytest.mark.parametrize("origin", [None, EVIL], ids=["no-origin", "foreign"])
    async def test_the_websocket_refuses_the_cookie_from_elsewhere(
        self, site: Site, origin: str | None
    ) -> None:
        session = await login(site)
        extra = {"Origin": origin} if origin else {}
        with pytest.raises(WSServerHandshakeError) as caught:
            await site.client.ws_connect(
                f"{V1}/events", headers=site.with_session(session, **extra)
            )
        assert caught.value.status == 403


# -- the token itself -----------------------------------------------------------------------


class TestTokenReveal:
    async def test_the_session_can_read_the_token_and_no_cache_keeps_it(self, site: Site) -> None:
        session = await login(site)
        resp = await site.client.get(f"{V1}/token", headers=site.with_session(session))
        assert resp.status == 200
        assert await resp.json() == {"token": site.token}
        assert resp.headers["Cache-Control"] == "no-store"

    async def test_the_token_needs_the_token_or_a_session(self, site: Site) -> None:
        resp = await site.client.get(f"{V1}/token")
        body = await resp.text()
        assert resp.status == 401
        assert site.token not in body

    async def test_the_session_survives_a_rotation_and_reads_the_new_token(self, api: Api) -> None:
        own = f"http://127.0.0.1:{api.port}"
        resp = await api.client.post(f"{V1}/dashboard/link", headers=api.auth())
        link = (await resp.json())["url"]
        login_answer = await api.client.get(link.removeprefix(own), allow_redirects=False)
        cookie = set_cookie(login_answer)
        assert cookie is not None
        headers = {"Cookie": f"{SESSION_COOKIE}={cookie[SESSION_COOKIE].value}"}

        rotated = await api.client.post(f"{V1}/token/rotate", headers={**headers, "Origin": own})
        assert rotated.status == 204
        revealed = await api.client.get(f"{V1}/token", headers=headers)
        assert await revealed.json() == {"token": api.rotations[-1]}
        old = await api.client.get(f"{V1}/status", headers=api.auth())
        assert old.status == 401
