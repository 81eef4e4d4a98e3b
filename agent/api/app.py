"""The local control API: REST under ``/api/v1`` and a WebSocket of events.

:func:`create_app` builds the aiohttp application around a :class:`~agent.control.Control`;
:mod:`agent.api.server` runs it. Every handler is a thin call into the control layer, which
answers with the resulting state. Errors are JSON::

    {"error": {"code": "conflict", "message": "group 'main': it is live, ...",
               "what": "...", "subject": "group 'main'", "hint": "...", "field": null}}

with 400 (unreadable body), 401 (token), 403 (foreign Host or Origin), 404 (unknown id),
409 (not in this state; nothing changed), 413 (body too large), 422 (a bad value; ``field``
says which) and 503 (the disk or the keyring refused). No answer, log line or error ever holds
a stream key or the token.
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
from agent.api.security import Guard, bearer
from agent.control import Control
from agent.core.model import UnknownId
from agent.core.redact import REDACTOR
from agent.core.validate import ValidationError
from agent.errors import CascadeError, Conflict
from agent.store.atomic import StoreError
from agent.store.codec import NewerSchema
from agent.store.profiles import ProfileExists, UnknownProfile
from agent.store.secrets import MissingKey, SecretStoreError
from agent.store.vault import VaultError

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
MAX_BODY_BYTES = 64 * 1024
OPEN_PATHS = frozenset({"/healthz"})  # answered without a token

CONTROL = web.AppKey("control", Control)
GUARD = web.AppKey("guard", Guard)
SOCKETS = web.AppKey("sockets", set[web.WebSocketResponse])

ROTATE = web.AppKey("rotate", object)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

GROUP_ACTIONS = ("start", "stop", "toggle", "arm", "disarm")
TARGET_ACTIONS = ("enable", "disable", "toggle")


def create_app(
    control: Control, guard: Guard, *, rotate_token: Callable[[], str] | None = None
) -> web.Application:
    """The API application for one agent. ``guard`` holds the token and allowed names;
    ``rotate_token`` stores a new token and returns it (``POST /api/v1/token/rotate``)."""
    app = web.Application(middlewares=[_errors, _front_door], client_max_size=MAX_BODY_BYTES)
    app[CONTROL] = control
    app[GUARD] = guard
    app[SOCKETS] = set()
    app[ROTATE] = rotate_token
    app.on_shutdown.append(_close_sockets)
    add_routes(app.router)
    return app


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/healthz", healthz)
    router.add_get(f"{PREFIX}/openapi.json", openapi)
    router.add_get(f"{PREFIX}/status", status)
    router.add_get(f"{PREFIX}/stats", stats)
    router.add_get(f"{PREFIX}/events", events)
    router.add_post(f"{PREFIX}/start-all", start_all)
    router.add_post(f"{PREFIX}/stop-all", stop_all)
    router.add_post(f"{PREFIX}/show", show)
    router.add_post(f"{PREFIX}/token/rotate", rotate)
    router.add_get(f"{PREFIX}/profile", profile)
    router.add_get(f"{PREFIX}/profiles", profiles)
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
    """Host, Origin and token checks, in that order, before any handler runs."""
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
    if request.path in OPEN_PATHS:
        return await handler(request)
    presented = bearer(request.headers.get("Authorization"))
    if presented is None and request.path == f"{PREFIX}/events":
        presented = request.query.get("token")
    if not guard.token_ok(presented):
        what = "no API token was given" if presented is None else "the API token is wrong"
        if presented is not None:
            await asyncio.sleep(guard.failed())
        raise ApiError(
            401,
            "unauthorized",
            what,
            hint="Send 'Authorization: Bearer <token>'; 'cascade token' prints the token",
            headers={"WWW-Authenticate": 'Bearer realm="cascade"'},
        )
    return await handler(request)


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
            await ws.send_str(REDACTOR.redact(json.dumps(event.to_dict())))


async def _close_sockets(app: web.Application) -> None:
    sockets: set[web.WebSocketResponse] = app[SOCKETS]
    for ws in list(sockets):
        await ws.close(code=1001, message=b"agent stopping")
