"""What the dashboard's browser tests share: Chromium, a record of the page's traffic, logging
in, screenshots, and an event loop in a thread for the streaming peers.

- :func:`launch_chromium` starts Debian's ``/usr/bin/chromium`` (never a downloaded browser)
  and fails with what to install when it is missing.
- :class:`Traffic` keeps every request a browser context made, every answer it received (with
  its body) and every WebSocket frame, to check later that nothing went to another host and
  that no stream key ever reached the page.
- :class:`Wire` reads, from Chromium's DevTools protocol, the requests of one page as they
  left the browser (cookies and ``Origin`` included) and the status each got, also where
  Playwright shows neither: answers a page may not read (no-cors, refused CORS, WebSockets).
- :class:`ForeignSite` serves a page from another origin (another port of 127.0.0.1), the way
  any web page the person has open could try to reach the agent.
- :class:`BackgroundLoop` runs :class:`tests.streams.FakePlatform` and
  :class:`tests.streams.Publisher` (asyncio code) beside Playwright's sync API, which owns the
  test thread's loop while a browser is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import os
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    Response,
    WebSocket,
    expect,
)

from agent.api.client import ApiClient

CHROMIUM = Path("/usr/bin/chromium")
#: A name Chromium itself resolves to 127.0.0.1: a web page whose DNS was re-pointed at the
#: agent (DNS rebinding), without touching the machine's resolver.
REBIND_HOST = "rebind.test"
SESSION_COOKIE = "cascade_session"

T = TypeVar("T")


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless; a clear failure when it is not installed."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the dashboard tests drive Debian's Chromium and never "
            "download a browser. Install it with `apt-get install chromium` (.ci/run does).",
            pytrace=False,
        )
    args = [f"--host-resolver-rules=MAP {REBIND_HOST} 127.0.0.1"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to sandbox itself as root
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)


# -- what a browser context sent and received --------------------------------------------------


@dataclass
class Answer:
    url: str
    method: str
    status: int
    headers: dict[str, str]
    text: str


@dataclass
class Traffic:
    """Every request, answer (with body) and WebSocket frame of one browser context."""

    requests: list[str] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)  # the browser console's warnings and errors
    page_errors: list[str] = field(default_factory=list)  # uncaught exceptions of the page

    @classmethod
    def watch(cls, context: BrowserContext) -> Traffic:
        traffic = cls()
        context.on("request", traffic._on_request)
        context.on("response", traffic._on_response)
        context.on("page", traffic._on_page)
        for page in context.pages:
            traffic._on_page(page)
        return traffic

    def _on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _on_response(self, response: Response) -> None:
        text = ""
        if not 300 <= response.status < 400:  # a redirect has no body to read
            try:
                text = response.body().decode("utf-8", errors="replace")
            except Exception as exc:  # the page went away before the body was read
                self.unreadable.append(f"{response.url}: {exc}")
        self.answers.append(
            Answer(response.url, response.request.method, response.status, response.headers, text)
        )

    def _on_page(self, page: Page) -> None:
        page.on("websocket", self._on_socket)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("console", self._on_console)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.console.append(message.text)

    def _on_socket(self, socket: WebSocket) -> None:
        self.sockets.append(socket.url)
        socket.on("framereceived", self._on_frame)
        socket.on("framesent", self._on_frame)

    def _on_frame(self, payload: str | bytes) -> None:
        self.frames.append(
            payload if isinstance(payload, str) else payload.decode(errors="replace")
        )

    def foreign(self, *origins: str) -> list[str]:
        """Requests and sockets to anywhere but ``origins`` (``http://127.0.0.1:PORT``)."""
        allowed = tuple(o.rstrip("/") + "/" for o in origins)
        allowed += tuple(o.replace("http://", "ws://", 1) for o in allowed)
        return [
            url
            for url in self.requests + self.sockets
            if not url.startswith(allowed) and not url.startswith("data:")
        ]

    def everything(self) -> str:
        """Every URL, answer body and frame as one text, to search for secrets."""
        parts = [*self.requests, *self.sockets, *self.frames]
        for answer in self.answers:
            parts += [answer.url, answer.text, *answer.headers.values()]
        return "\n".join(parts)

    def answered(self, method: str, path: str) -> list[Answer]:
        return [
            a for a in self.answers if a.method == method and a.url.split("?")[0].endswith(path)
        ]


@dataclass
class Exchange:
    """One request as it left the browser, and the status of its answer."""

    kind: str  # "http" or "websocket"
    method: str = ""
    url: str = ""
    sent: dict[str, str] = field(default_factory=dict)  # header names in lower case
    status: int | None = None


class Wire:
    """Every request of ``page`` as Chromium sent it, keyed by its DevTools request id."""

    def __init__(self, page: Page) -> None:
        self.exchanges: dict[str, Exchange] = {}
        cdp = page.context.new_cdp_session(page)
        cdp.on("Network.requestWillBeSent", self._will_send)
        cdp.on("Network.requestWillBeSentExtraInfo", self._sent_headers)
        cdp.on("Network.responseReceivedExtraInfo", self._status)
        cdp.on("Network.webSocketCreated", self._socket)
        cdp.on("Network.webSocketWillSendHandshakeRequest", self._socket_headers)
        cdp.on("Network.webSocketHandshakeResponseReceived", self._socket_status)
        cdp.send("Network.enable")

    def _get(self, request_id: str, kind: str = "http") -> Exchange:
        return self.exchanges.setdefault(request_id, Exchange(kind))

    def _will_send(self, event: dict[str, Any]) -> None:
        exchange = self._get(event["requestId"])
        exchange.method = event["request"]["method"]
        exchange.url = event["request"]["url"]

    def _sent_headers(self, event: dict[str, Any]) -> None:
        headers = {k.lower(): v for k, v in event["headers"].items()}
        self._get(event["requestId"]).sent.update(headers)

    def _status(self, event: dict[str, Any]) -> None:
        self._get(event["requestId"]).status = int(event["statusCode"])

    def _socket(self, event: dict[str, Any]) -> None:
        exchange = self._get(event["requestId"], "websocket")
        exchange.method, exchange.url = "GET", event["url"]

    def _socket_headers(self, event: dict[str, Any]) -> None:
        headers = {k.lower(): v for k, v in event["request"]["headers"].items()}
        self._get(event["requestId"], "websocket").sent.update(headers)

    def _socket_status(self, event: dict[str, Any]) -> None:
        self._get(event["requestId"], "websocket").status = int(event["response"]["status"])

    def to(self, origin: str) -> list[Exchange]:
        """The exchanges with ``origin`` (``http://127.0.0.1:PORT``), WebSockets included."""
        ws = origin.replace("http://", "ws://", 1)
        return [e for e in self.exchanges.values() if e.url.startswith((origin + "/", ws + "/"))]


# -- logging in ---------------------------------------------------------------------------------


def login_link(api: ApiClient) -> str:
    """A fresh one-time login link, as the tray's "Open dashboard" makes one."""
    answer = api.post("/api/v1/dashboard/link")
    assert answer["expires_in"] > 0, answer
    url: str = answer["url"]
    return url


def open_dashboard(context: BrowserContext, api: ApiClient, view: str = "live") -> Page:
    """A new page of ``context`` signed in through a login link, showing ``view``."""
    page = context.new_page()
    page.goto(login_link(api))
    expect(page.get_by_test_id("view-live")).to_be_visible()
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "open")
    if view != "live":
        show(page, view)
    return page


def show(page: Page, view: str) -> None:
    """Open a view through its link in the navigation, and wait until it shows its content."""
    page.get_by_test_id(f"nav-{view}").click()
    expect(page.get_by_test_id(f"view-{view}")).to_be_visible()
    wait_view_ready(page, view)


def wait_view_ready(page: Page, view: str) -> None:
    """Wait until ``view`` shows what it reads from the agent when it opens. (A view left
    keeps its last content, hidden: look inside the view, not the whole page.)"""
    inside = page.get_by_test_id(f"view-{view}")
    if view == "live":
        expect(inside.get_by_test_id("groups")).to_be_visible()
    elif view == "setup":
        expect(inside.get_by_test_id("setup-groups")).to_be_visible()
        expect(inside.get_by_test_id("ingest-form")).to_be_visible()
    elif view == "logs":
        expect(inside.get_by_test_id("log-line").first).to_be_attached()
    elif view == "settings":
        expect(inside.get_by_test_id("encoders-table")).to_be_visible()
        expect(inside.get_by_test_id("settings-form")).to_be_visible()
        expect(inside.get_by_test_id("ingest-form")).to_be_visible()
    elif view == "login":
        expect(inside.get_by_test_id("login-form")).to_be_visible()


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than its window (0: no horizontal scroll)."""
    width: int = page.evaluate(
        """() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)
                 - document.documentElement.clientWidth"""
    )
    return width


# -- screenshots --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """A window a person might use: its size and zoom."""

    name: str
    width: int
    height: int
    scale: float


LAYOUTS = (Layout("1280x900", 1280, 900, 1.0), Layout("1024-at-125pct", 1024, 900, 1.25))
SCHEMES: tuple[Literal["light", "dark"], ...] = ("light", "dark")


@dataclass
class Screenshots:
    """The folder screenshots go to, for a person to look at (they are never compared)."""

    folder: Path
    taken: list[Path] = field(default_factory=list)

    def take(self, page: Page, name: str) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


# -- another web site ----------------------------------------------------------------------------


class ForeignSite:
    """A tiny web server on its own port of 127.0.0.1 serving fixed files: another origin.

    ``files`` maps a path (``/``, ``/attack.js``) to ``(content type, body)``.
    """

    def __init__(self, files: dict[str, tuple[str, str]]) -> None:
        pages = {path: (kind, body.encode()) for path, (kind, body) in files.items()}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                kind, body = pages.get(self.path.split("?")[0], ("text/plain", b"not here"))
                self.send_response(200 if self.path.split("?")[0] in pages else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test reports what matters

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ForeignSite:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


# -- an event loop for the streaming peers ------------------------------------------------------


class BackgroundLoop:
    """An asyncio loop in a thread of its own: :meth:`run` a coroutine there and wait."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="dashboard-streams", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def __enter__(self) -> BackgroundLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self.run(self._cancel_rest(), timeout=20)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(20)
        self.loop.close()

    @staticmethod
    async def _cancel_rest() -> None:
        loop = asyncio.get_running_loop()
        rest = [t for t in asyncio.all_tasks(loop) if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        await loop.shutdown_asyncgens()
