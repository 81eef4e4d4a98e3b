"""The API's front door: token, Host, Origin, no CORS, and slowing down token guessing.

:class:`Guard`'s rules are unit-tested with a fake clock; the app is then checked to apply
them to real requests, before any handler runs.
"""

from __future__ import annotations

import hmac
import json
import socket
import time
from typing import Any

import pytest

from agent.api.security import (
    FIRST_PENALTY,
    FORGET_AFTER,
    FREE_FAILURES,
    MAX_PENALTY,
    Guard,
    bearer,
)
from tests.api.conftest import Api

V1 = "/api/v1"
TOKEN = "s3cr3t-token-value-0123456789abcdef"
PORT = 47830


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- Guard: Host and Origin -----------------------------------------------------------------


class TestHost:
    @pytest.mark.parametrize(
        "host",
        [f"127.0.0.1:{PORT}", f"localhost:{PORT}", f"[::1]:{PORT}", f"LOCALHOST:{PORT}"],
    )
    def test_the_agents_own_loopback_names_are_accepted(self, host: str) -> None:
        assert Guard(TOKEN, port=PORT).host_ok(host)

    @pytest.mark.parametrize(
        "host",
        [
            pytest.param(None, id="missing"),
            pytest.param("", id="empty"),
            pytest.param("127.0.0.1", id="no-port"),
            pytest.param(f"127.0.0.1:{PORT + 1}", id="other-port"),
            pytest.param(f"evil.example:{PORT}", id="rebound-name"),
            pytest.param(f"127.0.0.1.evil.example:{PORT}", id="lookalike"),
            pytest.param(f"192.168.1.5:{PORT}", id="lan-address"),
            pytest.param(f"0.0.0.0:{PORT}", id="wildcard"),
        ],
    )
    def test_anything_else_is_refused(self, host: str | None) -> None:
        assert not Guard(TOKEN, port=PORT).host_ok(host)

    def test_an_explicit_non_loopback_bind_adds_its_address(self) -> None:
        guard = Guard(TOKEN, port=PORT, bind="192.168.1.5")
        assert guard.host_ok(f"192.168.1.5:{PORT}")
        assert guard.host_ok(f"127.0.0.1:{PORT}")
        assert not guard.host_ok(f"192.168.1.6:{PORT}")

    def test_an_explicit_ipv6_bind_is_named_in_brackets(self) -> None:
        guard = Guard(TOKEN, port=PORT, bind="fd00::5")
        assert guard.host_ok(f"[fd00::5]:{PORT}")
        assert not guard.host_ok(f"fd00::5:{PORT}")

    def test_a_wildcard_bind_adds_this_machines_name(self) -> None:
        guard = Guard(TOKEN, port=PORT, bind="0.0.0.0")
        assert guard.host_ok(f"{socket.gethostname().lower()}:{PORT}")
        assert not guard.host_ok(f"evil.example:{PORT}")

    def test_a_loopback_bind_adds_nothing(self) -> None:
        guard = Guard(TOKEN, port=PORT, bind="127.0.0.2")
        assert not guard.host_ok(f"127.0.0.2:{PORT}")

    def test_setting_the_port_replaces_the_allowed_port(self) -> None:
        guard = Guard(TOKEN, port=0)
        guard.port = PORT
        assert guard.host_ok(f"127.0.0.1:{PORT}")
        assert not guard.host_ok("127.0.0.1:0")
        assert guard.origin_ok(f"http://127.0.0.1:{PORT}")


class TestOrigin:
    @pytest.mark.parametrize(
        "origin",
        [None, f"http://127.0.0.1:{PORT}", f"http://localhost:{PORT}", f"http://[::1]:{PORT}"],
    )
    def test_no_origin_or_the_agents_own_pages_are_accepted(self, origin: str | None) -> None:
        assert Guard(TOKEN, port=PORT).origin_ok(origin)

    @pytest.mark.parametrize(
        "origin",
        [
            "http://evil.example",
            f"http://evil.example:{PORT}",
            f"https://127.0.0.1:{PORT}",
            f"http://127.0.0.1:{PORT + 1}",
            "http://127.0.0.1",
            f"http://127.0.0.1:{PORT}.evil.example",
            "null",
            "",
        ],
    )
    def test_other_pages_are_refused(self, origin: str) -> None:
        assert not Guard(TOKEN, port=PORT).origin_ok(origin)


# -- Guard: the token -----------------------------------------------------------------------


class TestToken:
    def test_the_right_token_is_accepted(self) -> None:
        assert Guard(TOKEN, port=PORT).token_ok(TOKEN)

    @pytest.mark.parametrize(
        "presented",
        [
            pytest.param(None, id="none"),
            pytest.param("", id="empty"),
            pytest.param(TOKEN[:-1], id="prefix"),
            pytest.param(TOKEN + "x", id="longer"),
            pytest.param(TOKEN.upper(), id="case"),
            pytest.param("é" * len(TOKEN), id="non-ascii"),
        ],
    )
    def test_anything_else_is_refused(self, presented: str | None) -> None:
        assert not Guard(TOKEN, port=PORT).token_ok(presented)

    def test_the_comparison_is_hmac_compare_digest(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls: list[tuple[Any, Any]] = []
        real = hmac.compare_digest

        def spy(a: Any, b: Any) -> bool:
            calls.append((a, b))
            return real(a, b)

        monkeypatch.setattr(hmac, "compare_digest", spy)
        guard = Guard(TOKEN, port=PORT)
        assert not guard.token_ok("wrong")
        assert guard.token_ok(TOKEN)
        assert calls == [(b"wrong", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]

    def test_a_replaced_token_takes_over(self) -> None:
        guard = Guard(TOKEN, port=PORT)
        guard.replace_token("new-token-value")
        assert guard.token_ok("new-token-value")
        assert not guard.token_ok(TOKEN)


class TestBearer:
    @pytest.mark.parametrize(
        ("header", "token"),
        [
            ("Bearer abc123", "abc123"),
            ("bearer abc123", "abc123"),
            ("BEARER abc123", "abc123"),
            ("Bearer   abc123  ", "abc123"),
        ],
    )
    def test_the_token_of_a_bearer_header(self, header: str, token: str) -> None:
        assert bearer(header) == token

    @pytest.mark.parametrize(
        "header",
        [None, "", "Bearer", "Bearer ", "Bearer    ", "Basic abc123", "abc123", "Bearerabc"],
    )
    def test_no_token_otherwise(self, header: str | None) -> None:
        assert bearer(header) is None


# -- Guard: slowing down guessing -----------------------------------------------------------


class TestSlowdown:
    def test_the_first_wrong_tokens_are_free_then_each_waits_twice_as_long(self) -> None:
        guard = Guard(TOKEN, port=PORT, clock=FakeClock())
        waits = [guard.failed() for _ in range(FREE_FAILURES + 6)]
        assert FREE_FAILURES == 3 and FIRST_PENALTY == 0.25 and MAX_PENALTY == 4.0
        assert waits == [0.0, 0.0, 0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 4.0]

    def test_the_count_is_forgotten_after_a_quiet_minute(self) -> None:
        clock = FakeClock()
        guard = Guard(TOKEN, port=PORT, clock=clock)
        for _ in range(5):
            guard.failed()
        clock.now += FORGET_AFTER + 1
        assert guard.failed() == 0.0
        assert [guard.failed() for _ in range(3)] == [0.0, 0.0, 0.25]

    def test_wrong_tokens_inside_the_minute_keep_counting(self) -> None:
        clock = FakeClock()
        guard = Guard(TOKEN, port=PORT, clock=clock)
        waits = []
        for _ in range(5):
            waits.append(guard.failed())
            clock.now += FORGET_AFTER - 1  # slow, but never a full quiet minute
        assert waits == [0.0, 0.0, 0.0, 0.25, 0.5]


# -- the app applies the rules --------------------------------------------------------------


class TestTokenOnRequests:
    async def test_a_missing_token_is_401_with_a_bearer_challenge(self, api: Api) -> None:
        resp = await api.client.get(f"{V1}/status")
        body = await resp.json()
        assert resp.status == 401
        assert body["error"]["code"] == "unauthorized"
        assert body["error"]["what"] == "no API token was given"
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="cascade"'

    async def test_a_wrong_token_is_401(self, api: Api) -> None:
        guess = "guessed-token-4471"
        resp = await api.client.get(f"{V1}/status", headers={"Authorization": f"Bearer {guess}"})
        text = await resp.text()
        assert resp.status == 401
        assert json.loads(text)["error"]["what"] == "the API token is wrong"
        assert guess not in text and api.token not in text

    async def test_a_wrong_scheme_is_401(self, api: Api) -> None:
        headers = {"Authorization": f"Basic {api.token}"}
        resp = await api.client.get(f"{V1}/status", headers=headers)
        assert resp.status == 401

    async def test_the_query_token_only_opens_the_event_socket(self, api: Api) -> None:
        resp = await api.client.get(f"{V1}/status?token={api.token}")
        assert resp.status == 401

    async def test_the_right_token_is_accepted(self, api: Api) -> None:
        resp = await api.client.get(f"{V1}/status", headers=api.auth())
        assert resp.status == 200

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("POST", "groups/main/start"),
            ("POST", "start-all"),
            ("POST", "profiles/spare/activate"),
            ("PATCH", "ingest"),
            ("PUT", "targets/site/key"),
            ("DELETE", "groups/main"),
        ],
    )
    async def test_without_the_token_nothing_changes(
        self, api: Api, method: str, path: str
    ) -> None:
        before = api.store.path_of("studio").read_bytes()
        headers = {"Authorization": "Bearer wrong"}
        body = {"key": "k" * 20, "port": 1936}
        resp = await api.client.request(method, f"{V1}/{path}", headers=headers, json=body)
        assert resp.status == 401
        assert api.store.path_of("studio").read_bytes() == before
        assert api.agent.relay is not None
        assert not any(g.wants_output for g in api.agent.relay.groups.values())
        assert api.agent.profile.name == "studio"
        assert api.vault.get("studio", "site") is None

    async def test_an_unknown_path_without_a_token_is_401_not_404(self, api: Api) -> None:
        resp = await api.client.get(f"{V1}/no-such-thing")
        assert resp.status == 401


class TestHostOnRequests:
    @pytest.mark.parametrize("host", ["evil.example:{port}", "127.0.0.1:{other}", "localhost"])
    async def test_a_foreign_host_is_403_even_with_the_token(self, api: Api, host: str) -> None:
        headers = api.auth(Host=host.format(port=api.port, other=api.port + 1))
        resp = await api.client.get(f"{V1}/status", headers=headers)
        body = await resp.json()
        assert resp.status == 403
        assert body["error"]["code"] == "forbidden_host"
        assert f"http://127.0.0.1:{api.port}" in body["error"]["hint"]

    async def test_healthz_is_refused_to_a_foreign_host_too(self, api: Api) -> None:
        resp = await api.client.get("/healthz", headers={"Host": f"evil.example:{api.port}"})
        assert resp.status == 403

    async def test_localhost_with_the_port_is_accepted(self, api: Api) -> None:
        resp = await api.client.get(f"{V1}/status", headers=api.auth(Host=f"localhost:{api.port}"))
        assert resp.status == 200

    async def test_a_foreign_host_changes_nothing(self, api: Api) -> None:
        headers = api.auth(Host=f"evil.example:{api.port}")
        resp = await api.client.post(f"{V1}/groups/main/start", headers=headers)
        assert resp.status == 403
        assert api.agent.relay is not None and not api.agent.relay.groups["main"].live


class TestOriginOnRequests:
    @pytest.mark.parametrize(
        "origin", ["http://evil.example", "http://127.0.0.1:{other}", "https://127.0.0.1:{port}"]
    )
    async def test_a_foreign_origin_is_403_even_with_the_token(self, api: Api, origin: str) -> None:
        headers = api.auth(Origin=origin.format(port=api.port, other=api.port + 1))
        resp = await api.client.post(f"{V1}/groups/main/start", headers=headers)
        body = await resp.json()
        assert resp.status == 403
        assert body["error"]["code"] == "forbidden_origin"
        assert "Access-Control-Allow-Origin" not in resp.headers
        assert api.agent.relay is not None and not api.agent.relay.groups["main"].live

    async def test_the_agents_own_origin_is_accepted(self, api: Api) -> None:
        headers = api.auth(Origin=f"http://127.0.0.1:{api.port}")
        resp = await api.client.post(f"{V1}/groups/main/start", headers=headers)
        assert resp.status == 200
        assert (await resp.json())["live"] is True


class TestNoCors:
    async def test_no_answer_carries_a_cors_header(self, api: Api) -> None:
        own = f"http://127.0.0.1:{api.port}"
        requests: list[tuple[str, str, dict[str, str]]] = [
            ("GET", "/healthz", {"Origin": own}),
            ("GET", f"{V1}/status", api.auth(Origin=own)),
            ("GET", f"{V1}/status", {"Origin": own}),  # 401
            ("GET", f"{V1}/status", api.auth(Origin="http://evil.example")),  # 403
            ("GET", f"{V1}/nothing", api.auth(Origin=own)),  # 404
            ("DELETE", f"{V1}/status", api.auth(Origin=own)),  # 405
            (
                "OPTIONS",
                f"{V1}/groups/main/start",
                {
                    "Origin": "http://evil.example",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization",
                },
            ),
            (
                "OPTIONS",
                f"{V1}/groups/main/start",
                api.auth(Origin=own, **{"Access-Control-Request-Method": "POST"}),
            ),
        ]
        statuses = []
        for method, path, headers in requests:
            resp = await api.client.request(method, path, headers=headers)
            statuses.append(resp.status)
            assert not any(h.lower().startswith("access-control-") for h in resp.headers), (
                method,
                path,
                dict(resp.headers),
            )
        assert statuses == [200, 200, 401, 403, 404, 405, 403, 405]
        assert api.agent.relay is not None and not api.agent.relay.groups["main"].live


class TestSlowdownOnRequests:
    async def test_the_fifth_wrong_token_waits_and_the_right_one_never_does(self, api: Api) -> None:
        wrong = {"Authorization": "Bearer wrong-guess"}
        times = []
        for _ in range(5):
            started = time.monotonic()
            resp = await api.client.get(f"{V1}/status", headers=wrong)
            times.append(time.monotonic() - started)
            assert resp.status == 401
        assert all(t < 0.2 for t in times[:FREE_FAILURES]), times
        assert times[4] >= 0.2, times
        started = time.monotonic()
        resp = await api.client.get(f"{V1}/status", headers=api.auth())
        assert resp.status == 200
        assert time.monotonic() - started < 0.2

    async def test_a_missing_token_is_not_counted_as_a_guess(self, api: Api) -> None:
        for _ in range(FREE_FAILURES + 2):
            resp = await api.client.get(f"{V1}/status")
            assert resp.status == 401
        # Had those counted, this first wrong token would be the 6th and wait a second.
        assert api.guard.failed() == 0.0
