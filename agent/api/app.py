"""The local control API: REST under ``/api/v1`` and a WebSocket of events.

:func:`create_app` builds the aiohttp application around a :class:`~agent.control.Control`;
:mod:`agent.api.server` runs it. Every handler is a thin call into the control layer, which
answers with the resulting state. Errors are JSON::

    {"error": {"code": "conflict", "message": "group 'main': it is live, ...",
               "what": "...", "subject": "group 'main'", "hint": "...", "field": null}}

with 400 (unreadable body), 401 (token), 403 (foreign Host or Origin), 404 (unknown id),
409 (not in this state; nothing changed), 413 (body too large), 422 (a bad value; ``field``
says which) and 503 (the disk or the keyring refused). No answer, log line or error ever holds
a stream key or the token (``GET /api/v1/token`` is the one deliberate exception: the
dashboard's Reveal).

The same app serves the dashboard (:mod:`agent.dashboard`): its files at ``/`` and
``/static/...``, and ``/login`` and ``/logout``, which trade a one-time login code or the
token for a session cookie that the API then accepts in place of the token (see
:mod:`agent.api.security` for the rules).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from agent import __version__
from agent.api.openapi import openapi_document
from agent.api.pages import SECURITY_HEADERS, content_type, static_file
from agent.api.security import Guard, bearer
from agent.control import Control
from agent.core.events import Event, LogLine
from agent.core.logbook import CAPACITY, entry_of
from agent.core.model import UnknownId
from agent.core.redact import REDACTOR
from agent.core.validate import ValidationError
from agent.dashboard import CODE_LIFETIME, Dashboard
from agent.errors import CascadeError, Conflict
from agent.store.atomic import StoreError
from agent.store.codec import NewerSchema
from agent.store.profiles import ProfileExists, UnknownProfile
from agent.store.secrets import MissingKey, SecretStoreError
from agent.store.vault import VaultError

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
MAX_BODY_BYTES = 64 * 1024
# Routes answered without a token or a session (by route name): the pages hold no secret.
OPEN_ROUTES = frozenset({"healthz", "page:index", "page:static", "page:login", "page:logout"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SESSION_COOKIE = "cascade_session"
DEFAULT_LOG_LINES = 500
MAX_SOURCE_LENGTH = 200

CONTROL = web.AppKey("control", Control)
GUARD = web.AppKey("guard", Guard)
DASHBOARD = web.AppKey("dashboard", Dashboard)
SOCKETS = web.AppKey("sockets", set[web.WebSocketResponse])

ROTATE = web.AppKey("rotate", object)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

GROUP_ACTIONS = ("start", "stop", "toggle", "arm", "disarm")
TARGET_ACTIONS = ("enable", "disable", "toggle")


def create_app(
    control: Control,
    guard: Guard,
    *,
    rotate_token: Callable[[], str] | None = None,
    dashboard: Dashboard | None = None,
) -> web.Application:
    """The API application for one agent. ``guard`` holds the token and allowed names;
    ``rotate_token`` stores a new token and returns it (``POST /api/v1/token/rotate``);
    ``dashboard`` holds the dashboard's files and sessions (by default the shipped files)."""
    app = web.Application(middlewares=[_errors, _front_door], client_max_size=MAX_BODY_BYTES)
    app[CONTROL] = control
    app[GUARD] = guard
    app[DASHBOARD] = dashboard or Dashboard(lambda: guard.own_origin)
    app[SOCKETS] = set()
    app[ROTATE] = rotate_token
    app.on_shutdown.append(_close_sockets)
    app.on_response_prepare.append(_security_headers)
    add_routes(app.router)
    return app


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", index, name="page:index")
    router.add_get("/static/{path:.+}", static, name="page:static")
    router.add_get("/login", login_with_code, name="page:login")
    router.add_post("/login", login_with_token, name="page:login")
    router.add_post("/logout", logout, name="page:logout")
    router.add_get("/healthz", healthz, name="healthz")
    router.add_get(f"{PREFIX}/openapi.json", openapi)
    router.add_get(f"{PREFIX}/status", status)
    router.add_get(f"{PREFIX}/stats", stats)
    router.add_get(f"{PREFIX}/events", events, name="events")
    router.add_post(f"{PREFIX}/start-all", start_all)
    router.add_post(f"{PREFIX}/stop-all", stop_all)
    router.add_post(f"{PREFIX}/show", show)
    router.add_get(f"{PREFIX}/session", session)
    router.add_get(f"{PREFIX}/token", token)
    router.add_post(f"{PREFIX}/token/rotate", rotate)
    router.add_post(f"{PREFIX}/dashboard/link", dashboard_link)
    router.add_get(f"{PREFIX}/logs", logs)
    router.add_get(f"{PREFIX}/encoders", encoders)
    router.add_post(f"{PREFIX}/encoders/probe", probe_encoders)
    router.add_get(f"{PREFIX}/settings", settings)
    router.add_patch(f"{PREFIX}/settings", patch_settings)
    router.add_get(f"{PREFIX}/platforms", platforms)
    router.add_get(f"{PREFIX}/profile", profile)
    router.add_get(f"{PREFIX}/profiles", profiles)
    router.add_post(f"{PREFIX}/profiles", create_profile)
    router.add_delete(f"{PREFIX}/profiles/{{id}}", delete_profile)
    router.add_post(f"{PREFIX}/profiles/{{id}}/activate", activate_profile)
    router.add_get(f"{PREFIX}/ingest", ingest)
    router.add_patch(f"{PREFIX}/ingest", patch_ingest)
    router.add_get(f"{PREFIX}/groups", groups)
    router.add_post(f"{PREFIX}/groups", add_group)
    router.add_get(f"{PREFIX}/groups/{{id}}", group)
    router.add_patch(f"{PREFIX}/groups/{{id}}", patch_group)
    router.add_delete(f"{PREFIX}/groups/{{id}}", delete_group)
    router.add_post(f"{PREFIX}/groups/{{id}}/targets", add_target)
    for action in GROUP_ACTIONS:
        router.add_post(f"{PREFIX}/groups/{{id}}/{action}", _group_action(action))
    router.add_get(f"{PREFIX}/targets/{{id}}", target)
    router.add_patch(f"{PREFIX}/targets/{{id}}", patch_target)
    router.add_delete(f"{PREFIX}/targets/{{id}}", delete_target)
    router.add_put(f"{PREFIX}/targets/{{id}}/key", put_key)
    for action in TARGET_ACTIONS:
        router.add_post(f"{PREFIX}/targets/{{id}}/{action}", _target_action(action))


# -- middlewares ----------------------------------------------------------------------------


@web.middleware
async def _front_door(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Host, Origin and token (or session) checks, in that order, before any handler runs."""
    guard = request.app[GUARD]
    if not guard.host_ok(request.headers.get("Host")):
        raise ApiError(
            403,
            "forbidden_host",
            "the request's Host is not this agent's own address",
            hint=f"Call the agent as http://127.0.0.1:{guard.port}",
        )
    if not guard.origin_ok(request.headers.get("Origin")):
        raise ApiError(
            403,
            "forbidden_origin",
            "requests from other web pages are refused",
            hint="Use the agent's own dashboard, or call the API from a script or the CLI",
        )
    route = request.match_info.route.name
    if route in OPEN_ROUTES:
        return await handler(request)
    await _authenticate(request, guard, websocket=route == "events")
    return await handler(request)


async def _authenticate(request: web.Request, guard: Guard, *, websocket: bool) -> None:
    """Let in the right token or a live dashboard session; else 401 (or 403).

    A token that is given decides alone (a wrong one is never rescued by a cookie). With the
    session cookie, a change or the WebSocket needs the agent's own Origin (CSRF).
    """
    presented = bearer(request.headers.get("Authorization"))
    if presented is None and websocket:
        presented = request.query.get("token")
    if presented is not None:
        if guard.token_ok(presented):
            return
        await asyncio.sleep(guard.failed())
        raise _unauthorized("the API token is wrong")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is None:
        raise _unauthorized("no API token was given")
    if not request.app[DASHBOARD].sessions.check(cookie):
        raise _unauthorized(
            "the dashboard session has ended",
            hint="Open the dashboard again from Cascade's tray menu, or log in with the token",
        )
    if (request.method in STATE_CHANGING or websocket) and not guard.origin_is_own(
        request.headers.get("Origin")
    ):
        raise ApiError(
            403,
            "forbidden_origin",
            "with the dashboard's session, a change or the live events must come from the "
            "dashboard's own page",
            hint="Use the dashboard itself, or send the token from a script",
        )


def _unauthorized(what: str, *, hint: str | None = None) -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        what,
        hint=hint or "Send 'Authorization: Bearer <token>'; 'cascade token' prints the token",
        headers={"WWW-Authenticate": 'Bearer realm="cascade"'},
    )


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer, page or API, forbids framing, sniffing, referrers and foreign content."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as a JSON error the person can act on; secrets redacted."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        keep = {k: v for k, v in exc.headers.items() if k in ("Allow", "WWW-Authenticate")}
        code, what = _HTTP_ERRORS.get(exc.status, ("error", exc.reason.lower()))
        return ApiError(exc.status, code, what, headers=keep).response()
    except CascadeError as exc:
        status, code = _status_of(exc)
        return ApiError(
            status,
            code,
            exc.what,
            subject=exc.subject,
            hint=exc.hint,
            field=getattr(exc, "field", None),
        ).response()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("API %s %s failed", request.method, request.path)
        return ApiError(
            500, "internal", "the agent failed unexpectedly", hint="See the agent's log"
        ).response()


class ApiError(Exception):
    """An error answer: status, a stable ``code``, and the sentence a person reads."""

    def __init__(
        self,
        status: int,
        code: str,
        what: str,
        *,
        subject: str | None = None,
        hint: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(what)
        self.status = status
        self.code = code
        self.what = what
        self.subject = subject
        self.hint = hint
        self.field = field
        self.headers = headers or {}

    def response(self) -> web.Response:
        message = f"{self.subject}: {self.what}" if self.subject else self.what
        if self.hint:
            message = f"{message.rstrip('.')}. {self.hint}"
        body = {
            "error": {
                "code": self.code,
                "message": REDACTOR.redact(message),
                "what": REDACTOR.redact(self.what),
                "subject": self.subject,
                "hint": REDACTOR.redact(self.hint) if self.hint else None,
                "field": self.field,
            }
        }
        return web.json_response(body, status=self.status, headers=self.headers)


def _status_of(exc: CascadeError) -> tuple[int, str]:
    if isinstance(exc, UnknownId | UnknownProfile):
        return 404, "not_found"
    if isinstance(exc, ValidationError):
        return 422, "invalid"
    # A missing stream key is the set-up not allowing it now, not a store that refused.
    if isinstance(exc, Conflict | ProfileExists | NewerSchema | MissingKey):
        return 409, "conflict"
    if isinstance(exc, StoreError | SecretStoreError | VaultError):
        return 503, "unavailable"
    return 409, "conflict"  # a configuration that does not allow it now (a missing key, ...)


_HTTP_ERRORS = {
    400: ("bad_request", "the request could not be read"),
    404: ("not_found", "there is no such API path; see /api/v1/openapi.json"),
    405: ("method_not_allowed", "this path does not take this method"),
    413: ("too_large", f"the request body is larger than {MAX_BODY_BYTES // 1024} KiB"),
}


# -- helpers --------------------------------------------------------------------------------


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


async def _body(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object; 400 if it is not one, 413 if it is too large."""
    try:
        raw = await request.read()
    except web.RequestPayloadError:  # e.g. a Content-Encoding the body does not match
        raise ApiError(
            400, "bad_request", "the body could not be read (is its Content-Encoding right?)"
        ) from None
    if not raw.strip():
        if required:
            raise ApiError(400, "bad_request", "the request needs a JSON object as its body")
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_request", f"the body is not valid JSON ({exc})") from None
    except RecursionError:  # "[[[[...]]]]" nested deeper than the parser goes
        raise ApiError(400, "bad_request", "the body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    try:  # "\ud800" is valid JSON but not text: nothing could save or show it
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(
            400, "bad_request", "the body holds a lone UTF-16 surrogate, which is not text"
        ) from None
    return data


def _control(request: web.Request) -> Control:
    return request.app[CONTROL]


def _id(request: web.Request) -> str:
    return request.match_info["id"]


# -- reading --------------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    return _json({"ok": True, "version": __version__})


async def openapi(request: web.Request) -> web.Response:
    return _json(openapi_document())


async def status(request: web.Request) -> web.Response:
    return _json(_control(request).status())


async def session(request: web.Request) -> web.Response:
    """Whether the caller is let in, and how: the dashboard asks this first. A token that is
    given decides alone (the front door refused a wrong one), so without one it was the
    session cookie."""
    via = "token" if bearer(request.headers.get("Authorization")) is not None else "session"
    return _json({"authenticated": True, "via": via})


async def token(request: web.Request) -> web.Response:
    """The API token itself (the dashboard's Reveal and Copy); never kept by a cache."""
    return web.json_response(
        {"token": request.app[GUARD].token}, headers={"Cache-Control": "no-store"}
    )


async def logs(request: web.Request) -> web.Response:
    source = request.query.get("source") or None
    if source is not None and len(source) > MAX_SOURCE_LENGTH:
        raise ValidationError("the source is too long to be one", field="source")
    return _json(_control(request).logs(source, _limit(request.query.get("limit"))))


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LOG_LINES
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= CAPACITY:
        raise ValidationError(
            f"limit must be a whole number from 1 to {CAPACITY}",
            field="limit",
            hint=f"Leave it out for the last {DEFAULT_LOG_LINES} lines",
        )
    return limit


async def encoders(request: web.Request) -> web.Response:
    return _json(await _control(request).encoders())


async def settings(request: web.Request) -> web.Response:
    return _json(_running_address(request, await _control(request).settings_view()))


async def platforms(request: web.Request) -> web.Response:
    return _json(_control(request).platforms())


def _running_address(request: web.Request, view: dict[str, Any]) -> dict[str, Any]:
    """The settings with the address the API really listens on (a --port wins)."""
    guard = request.app[GUARD]
    return {**view, "api_port": guard.port, "api_bind": guard.bind}


async def stats(request: web.Request) -> web.Response:
    return _json(_control(request).stats())


async def groups(request: web.Request) -> web.Response:
    return _json({"groups": _control(request).groups()})


async def group(request: web.Request) -> web.Response:
    return _json(_control(request).group(_id(request)))


async def target(request: web.Request) -> web.Response:
    control = _control(request)
    return _json({**control.target_config(_id(request)), **control.target(_id(request))})


async def profile(request: web.Request) -> web.Response:
    return _json(_control(request).profile_view())


async def profiles(request: web.Request) -> web.Response:
    return _json(_control(request).profiles())


async def ingest(request: web.Request) -> web.Response:
    return _json(_control(request).ingest_view())


# -- live operations ------------------------------------------------------------------------


def _group_action(action: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return _json(await _control(request).group_action(_id(request), action))

    handler.__name__ = f"group_{action}"
    return handler


def _target_action(action: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return _json(await _control(request).target_action(_id(request), action))

    handler.__name__ = f"target_{action}"
    return handler


async def start_all(request: web.Request) -> web.Response:
    return _json(await _control(request).start_all())


async def rotate(request: web.Request) -> web.Response:
    """Replace the token: stored first, then accepted; the old one is refused from now on.
    The answer never holds it: the caller reads it from where it is kept."""
    store = request.app[ROTATE]
    if not callable(store):
        raise ApiError(
            409,
            "conflict",
            "this agent cannot replace its token",
            hint="Run 'cascade token rotate' and restart the agent",
        )
    token = str(await asyncio.to_thread(store))
    REDACTOR.add(token)
    request.app[GUARD].replace_token(token)
    log.info("the API token was replaced; the old one is refused from now on")
    return web.Response(status=204)


async def show(request: web.Request) -> web.Response:
    return _json(_control(request).show("another 'cascade run' was started"))


async def dashboard_link(request: web.Request) -> web.Response:
    """A one-time link that opens the dashboard logged in (``cascade dashboard``)."""
    url = request.app[DASHBOARD].login_link()
    return _json({"url": url, "expires_in": int(CODE_LIFETIME)})


async def probe_encoders(request: web.Request) -> web.Response:
    return _json(await _control(request).probe_encoders())


async def patch_settings(request: web.Request) -> web.Response:
    view = await _control(request).edit_settings(await _body(request))
    return _json(_running_address(request, view))


async def stop_all(request: web.Request) -> web.Response:
    return _json(await _control(request).stop_all())


# -- editing --------------------------------------------------------------------------------


async def patch_ingest(request: web.Request) -> web.Response:
    return _json(await _control(request).edit_ingest(await _body(request)))


async def add_group(request: web.Request) -> web.Response:
    return _json(await _control(request).add_group(await _body(request)), status=201)


async def patch_group(request: web.Request) -> web.Response:
    return _json(await _control(request).edit_group(_id(request), await _body(request)))


async def delete_group(request: web.Request) -> web.Response:
    await _control(request).remove_group(_id(request))
    return web.Response(status=204)


async def add_target(request: web.Request) -> web.Response:
    spec = await _body(request)
    return _json(await _control(request).add_target(_id(request), spec), status=201)


async def patch_target(request: web.Request) -> web.Response:
    return _json(await _control(request).edit_target(_id(request), await _body(request)))


async def delete_target(request: web.Request) -> web.Response:
    await _control(request).remove_target(_id(request))
    return web.Response(status=204)


async def put_key(request: web.Request) -> web.Response:
    body = await _body(request)
    await _control(request).set_key(_id(request), body.get("key"))
    return web.Response(status=204)


async def activate_profile(request: web.Request) -> web.Response:
    return _json(await _control(request).activate(_id(request)))


async def create_profile(request: web.Request) -> web.Response:
    return _json(await _control(request).create_profile(await _body(request)), status=201)


async def delete_profile(request: web.Request) -> web.Response:
    await _control(request).delete_profile(_id(request))
    return web.Response(status=204)


# -- the dashboard's pages ------------------------------------------------------------------


async def index(request: web.Request) -> web.StreamResponse:
    return _page(request, "index.html")


async def static(request: web.Request) -> web.StreamResponse:
    return _page(request, request.match_info["path"])


def _page(request: web.Request, relative: str) -> web.StreamResponse:
    path = static_file(request.app[DASHBOARD].static_dir, relative)
    if path is None:
        if relative == "index.html":
            raise ApiError(
                404,
                "not_found",
                "the dashboard's files are not installed",
                hint="Reinstall cascade-agent; the API itself works without them",
            )
        raise ApiError(404, "not_found", "there is no such dashboard file")
    return web.FileResponse(
        path, headers={"Content-Type": content_type(path), "Cache-Control": "no-cache"}
    )


async def login_with_code(request: web.Request) -> web.Response:
    """``/login?code=…`` from a login link: a session cookie and the Live view, or the login
    view when the code is unknown, used or expired."""
    sessions = request.app[DASHBOARD].sessions
    opened = sessions.redeem(request.query.get("code"))
    answer = web.Response(
        status=303,
        headers={"Location": "/#live" if opened else "/#login", "Cache-Control": "no-store"},
    )
    if opened:
        _set_session(answer, opened)
    return answer


async def login_with_token(request: web.Request) -> web.Response:
    """``{"token": "…"}`` pasted into the dashboard's login form: a session cookie."""
    guard = request.app[GUARD]
    if not guard.origin_is_own(request.headers.get("Origin")):
        raise ApiError(
            403,
            "forbidden_origin",
            "logging in with the token works only from the dashboard's own page",
            hint=f"Open {guard.own_origin}/ and paste the token there",
        )
    presented = (await _body(request)).get("token")
    if not isinstance(presented, str) or not guard.token_ok(presented):
        await asyncio.sleep(guard.failed())
        raise ApiError(
            401, "unauthorized", "the API token is wrong", hint="'cascade token' prints it"
        )
    answer = web.Response(status=204, headers={"Cache-Control": "no-store"})
    _set_session(answer, request.app[DASHBOARD].sessions.open())
    return answer


async def logout(request: web.Request) -> web.Response:
    """Forget this browser's session and clear its cookie."""
    request.app[DASHBOARD].sessions.close(request.cookies.get(SESSION_COOKIE))
    answer = web.Response(status=204, headers={"Cache-Control": "no-store"})
    answer.del_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict")
    return answer


def _set_session(answer: web.Response, session_id: str) -> None:
    # No Max-Age: the cookie ends with the browser session (and the session with the agent).
    answer.set_cookie(SESSION_COOKIE, session_id, path="/", httponly=True, samesite="Strict")


# -- events ---------------------------------------------------------------------------------


async def events(request: web.Request) -> web.StreamResponse:
    """A WebSocket of typed events: first a ``hello`` with the full status, then every event.

    ``?kinds=group.state,target.state`` keeps only those kinds. Stats arrive at most once a
    second per group; a client too slow to keep up loses the oldest events, never the agent.
    """
    control = _control(request)
    kinds_param = request.query.get("kinds")
    kinds = [k.strip() for k in kinds_param.split(",") if k.strip()] if kinds_param else None
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4096)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    with control.agent.bus.subscribe(kinds, maxsize=1000) as sub:
        await ws.send_json({"type": "hello", "version": __version__, "status": control.status()})
        sender = asyncio.create_task(_forward(ws, sub))
        try:
            async for msg in ws:  # clients send nothing; this ends when the socket closes
                if msg.type is WSMsgType.ERROR:
                    break
        finally:
            request.app[SOCKETS].discard(ws)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
    return ws


async def _forward(ws: web.WebSocketResponse, sub: Any) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        async for event in sub:
            if ws.closed:
                return
            await ws.send_str(REDACTOR.redact(json.dumps(_message(event))))


def _message(event: Event) -> dict[str, Any]:
    """An event as sent: a log line as the Logs view keeps it (plain level, ``time``)."""
    if isinstance(event, LogLine):
        return {"type": event.kind, "at": event.at, **entry_of(event).to_json()}
    return event.to_dict()


async def _close_sockets(app: web.Application) -> None:
    sockets: set[web.WebSocketResponse] = app[SOCKETS]
    for ws in list(sockets):
        await ws.close(code=1001, message=b"agent stopping")
