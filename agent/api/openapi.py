"""The API's OpenAPI 3.1 document, served at ``/api/v1/openapi.json``.

Written out by hand from the routes in :mod:`agent.api.app`; a test checks that every route is
here and every path here is routed (the dashboard's pages, :data:`agent.api.pages.PAGE_PATHS`,
are not part of the API and are left out), and a fuzz run checks the answers against these
schemas.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from agent import __version__
from agent.core.validate import SLUG as SLUG_RE

JsonObject = dict[str, Any]

P = "/api/v1"


def _ref(name: str) -> JsonObject:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **extra: Any) -> JsonObject:
    return {"type": [kind, "null"], **extra}


def _obj(
    props: JsonObject, required: list[str] | None = None, *, closed: bool = False
) -> JsonObject:
    schema: JsonObject = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    return schema


SLUG = {"type": "string", "pattern": SLUG_RE.pattern}
GROUP_STATES = ["idle", "armed", "waiting", "starting", "live", "degraded"]
TARGET_STATES = [
    *("disabled", "idle", "waiting", "connecting", "live", "retrying", "stopping", "failed")
]
PLATFORMS = ["youtube", "twitch", "kick", "facebook", "custom", "recording"]

VIDEO = _obj(
    {
        "codec": {"type": "string", "description": "libx264, h264_nvenc, h264_qsv, ..."},
        "width": _nullable("integer"),
        "height": _nullable("integer"),
        "fps": _nullable("number"),
        "bitrate_kbps": {"type": "integer"},
        "keyframe_interval_s": {"type": "number"},
        "preset": {"type": "string"},
        "profile": _nullable("string"),
    },
    closed=True,
)
AUDIO = _obj(
    {
        "codec": {"type": "string", "enum": ["copy", "aac", "libopus", "libmp3lame"]},
        "bitrate_kbps": {"type": "integer"},
        "sample_rate": _nullable("integer"),
        "channels": _nullable("integer"),
    },
    closed=True,
)

TARGET_STATE_PROPS: JsonObject = {
    "id": {"type": "string"},
    "group": {"type": "string"},
    "state": {"type": "string", "enum": TARGET_STATES},
    "enabled": {"type": "boolean"},
    "destination": {"type": "string", "description": "where it sends; the key is masked"},
    "bitrate_kbps": _nullable("number"),
    "fps": _nullable("number"),
    "frames": _nullable("integer"),
    "dropped_frames": {"type": "integer"},
    "duplicated_frames": {"type": "integer"},
    "bytes_sent": {"type": "integer"},
    "uptime_s": _nullable("number"),
    "retries": {"type": "integer"},
    "last_error": {"type": "string"},
    "hub_bytes_delivered": {"type": "integer"},
    "hub_tags_dropped": {"type": "integer"},
}
TARGET_CONFIG_PROPS: JsonObject = {
    "id": {"type": "string"},
    "group": {"type": "string"},
    "name": {"type": "string"},
    "platform": {"type": "string", "enum": PLATFORMS},
    "url": {"type": "string"},
    "enabled": {"type": "boolean"},
    "backup": {"type": "boolean"},
    "has_key": {"type": "boolean", "description": "only whether a key is set; never the key"},
}

SCHEMAS: JsonObject = {
    "Error": _obj(
        {
            "error": _obj(
                {
                    "code": {
                        "type": "string",
                        "enum": [
                            "bad_request",
                            "unauthorized",
                            "forbidden_host",
                            "forbidden_origin",
                            "not_found",
                            "method_not_allowed",
                            "conflict",
                            "too_large",
                            "invalid",
                            "unavailable",
                            "internal",
                            "error",
                        ],
                    },
                    "message": {"type": "string", "description": "the full sentence to show"},
                    "what": {"type": "string"},
                    "subject": _nullable("string"),
                    "hint": _nullable("string"),
                    "field": _nullable("string", description="the bad field, for a 422"),
                },
                ["code", "message"],
            )
        },
        ["error"],
    ),
    "Shown": _obj({"ok": {"type": "boolean"}}, ["ok"]),
    "Health": _obj({"ok": {"type": "boolean"}, "version": {"type": "string"}}, ["ok", "version"]),
    "TargetState": _obj(TARGET_STATE_PROPS, ["id", "group", "state", "enabled"]),
    "TargetActionResult": _obj(
        {**TARGET_STATE_PROPS, "group_state": {"type": "string", "enum": GROUP_STATES}},
        ["id", "group", "state", "enabled", "group_state"],
    ),
    "GroupState": _obj(
        {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "mode": {"type": "string", "enum": ["passthrough", "reencode"]},
            "state": {"type": "string", "enum": GROUP_STATES},
            "armed": {"type": "boolean"},
            "live": {"type": "boolean"},
            "encoder": _nullable("object"),
            "targets": {"type": "array", "items": _ref("TargetState")},
            "targets_live": {"type": "integer"},
            "bitrate_kbps": {"type": "number"},
        },
        ["id", "name", "mode", "state", "armed", "targets"],
    ),
    "GroupList": _obj(
        {"groups": {"type": "array", "items": _ref("GroupState")}},
        ["groups"],
    ),
    "IngestState": _obj(
        {
            "kind": {"type": "string", "enum": ["rtmp", "srt", "pull"]},
            "url": {"type": "string", "description": "the server URL to paste into OBS"},
            "state": {
                "type": "string",
                "enum": ["stopped", "listening", "receiving", "ended", "failed"],
            },
            "reason": {"type": "string"},
            "stream": {"type": "object", "description": "codec, size, fps of what comes in"},
            "bitrate_kbps": _nullable("number"),
        },
        ["kind", "url", "state"],
    ),
    "Totals": _obj(
        {
            "groups_live": {"type": "integer"},
            "targets": {"type": "integer"},
            "targets_live": {"type": "integer"},
            "targets_failing": {"type": "integer"},
            "bitrate_kbps": {"type": "number"},
        },
        ["groups_live", "targets", "targets_live", "targets_failing"],
    ),
    "Status": _obj(
        {
            "version": {"type": "string"},
            "profile": {"type": "string"},
            "problem": {"type": "string", "description": "what stops the agent working, if any"},
            "ingest": _ref("IngestState"),
            "groups": {"type": "array", "items": _ref("GroupState")},
            "totals": _ref("Totals"),
        },
        ["version", "profile", "ingest", "groups", "totals"],
    ),
    "Stats": _obj(
        {
            "ingest": _ref("IngestState"),
            "groups": {"type": "array", "items": _ref("GroupState")},
            "totals": _ref("Totals"),
        },
        ["ingest", "groups", "totals"],
    ),
    "Video": VIDEO,
    "Audio": AUDIO,
    "IngestConfig": _obj(
        {
            "kind": {"type": "string", "enum": ["rtmp", "srt", "pull"]},
            "bind": {"type": "string"},
            "port": {"type": "integer"},
            "app": {"type": "string"},
            "url": {"type": "string"},
            "srt_latency_ms": {"type": "integer"},
            "obs_url": {"type": "string"},
            "has_key": {"type": "boolean"},
        },
        ["kind", "bind", "port", "app", "obs_url", "has_key"],
    ),
    "IngestPatch": _obj(
        {
            "kind": {"type": "string", "enum": ["rtmp", "srt", "pull"]},
            "bind": {"type": "string", "description": "127.0.0.1 (this machine) or 0.0.0.0"},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "app": {"type": "string"},
            "key": {"type": "string", "description": "the stream key OBS must use; write-only"},
            "url": {"type": "string", "description": "what to pull, for kind 'pull'"},
            "srt_latency_ms": {"type": "integer"},
        },
        closed=True,
    ),
    "TargetConfig": _obj(TARGET_CONFIG_PROPS, ["id", "group", "platform", "enabled", "has_key"]),
    "TargetDetail": _obj(
        {**TARGET_STATE_PROPS, **TARGET_CONFIG_PROPS},
        ["id", "group", "platform", "enabled", "has_key", "state"],
    ),
    "GroupConfig": _obj(
        {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "mode": {"type": "string", "enum": ["passthrough", "reencode"]},
            "video": _ref("Video"),
            "audio": _ref("Audio"),
            "targets": {
                "type": "array",
                "items": _obj({k: v for k, v in TARGET_CONFIG_PROPS.items() if k != "group"}),
            },
            "armed": {"type": "boolean"},
        },
        ["id", "mode", "video", "audio", "targets", "armed"],
    ),
    "GroupCreate": _obj(
        {
            "id": SLUG,
            "name": {"type": "string"},
            "mode": {"type": "string", "enum": ["passthrough", "reencode"]},
            "video": _ref("Video"),
            "audio": _ref("Audio"),
            "armed": {"type": "boolean"},
        },
        ["id"],
        closed=True,
    ),
    "GroupPatch": _obj(
        {
            "id": SLUG,
            "name": {"type": "string"},
            "mode": {"type": "string", "enum": ["passthrough", "reencode"]},
            "video": _ref("Video"),
            "audio": _ref("Audio"),
            "armed": {"type": "boolean"},
        },
        closed=True,
    ),
    "TargetCreate": _obj(
        {
            "id": SLUG,
            "name": {"type": "string"},
            "platform": {"type": "string", "enum": PLATFORMS},
            "url": {"type": "string", "description": "server URL, or a file for 'recording'"},
            "enabled": {"type": "boolean"},
            "backup": {"type": "boolean", "description": "use the platform's backup ingest"},
        },
        ["id"],
        closed=True,
    ),
    "TargetPatch": _obj(
        {
            "id": SLUG,
            "name": {"type": "string"},
            "platform": {"type": "string", "enum": PLATFORMS},
            "url": {"type": "string"},
            "enabled": {"type": "boolean"},
            "backup": {"type": "boolean"},
        },
        closed=True,
    ),
    "KeyPut": _obj({"key": {"type": "string", "minLength": 1}}, ["key"], closed=True),
    "Profile": _obj(
        {
            "name": {"type": "string"},
            "ingest": _ref("IngestConfig"),
            "groups": {"type": "array", "items": _ref("GroupConfig")},
        },
        ["name", "ingest", "groups"],
    ),
    "Profiles": _obj(
        {"active": {"type": "string"}, "profiles": {"type": "array", "items": {"type": "string"}}},
        ["active", "profiles"],
    ),
    "ProfileCreate": _obj(
        {
            "name": SLUG,
            "from": _nullable("string", description="copy this profile (with its keys)"),
        },
        ["name"],
        closed=True,
    ),
    "Session": _obj(
        {
            "authenticated": {"type": "boolean"},
            "via": {"type": "string", "enum": ["token", "session"]},
        },
        ["authenticated", "via"],
    ),
    "Token": _obj({"token": {"type": "string"}}, ["token"]),
    "DashboardLink": _obj(
        {
            "url": {"type": "string", "description": "http://127.0.0.1:PORT/login?code=..."},
            "expires_in": {"type": "integer", "description": "seconds the link works, once"},
        },
        ["url", "expires_in"],
    ),
    "LogLine": _obj(
        {
            "time": {"type": "string", "description": "ISO-8601 with the UTC offset"},
            "level": {"type": "string", "enum": ["debug", "info", "warning", "error"]},
            "source": {
                "type": "string",
                "description": "agent, ingest, group:ID (its encoder), target:ID",
            },
            "line": {"type": "string", "description": "redacted"},
        },
        ["time", "level", "source", "line"],
    ),
    "Logs": _obj(
        {
            "lines": {"type": "array", "items": _ref("LogLine")},
            "sources": {"type": "array", "items": {"type": "string"}},
        },
        ["lines", "sources"],
    ),
    "Encoder": _obj(
        {
            "name": {"type": "string"},
            "usable": {"type": "boolean"},
            "reason": _nullable("string", description="why it is not usable; null if it is"),
            "label": {"type": "string"},
            "family": {"type": "string"},
        },
        ["name", "usable", "reason", "label"],
    ),
    "FFmpegInUse": _obj(
        {"path": {"type": "string"}, "version": {"type": "string"}}, ["path", "version"]
    ),
    "Encoders": _obj(
        {
            "video": {"type": "array", "items": _ref("Encoder")},
            "audio": {"type": "array", "items": _ref("Encoder")},
            "ffmpeg": _ref("FFmpegInUse"),
            "probed_at": {"type": "string", "description": "ISO-8601"},
        },
        ["video", "audio", "ffmpeg", "probed_at"],
    ),
    "Autostart": _obj(
        {
            "supported": {"type": "boolean"},
            "enabled": {"type": "boolean"},
            "detail": {"type": "string"},
        },
        ["supported", "enabled", "detail"],
    ),
    "Settings": _obj(
        {
            "ffmpeg": _nullable("string", description="the chosen FFmpeg; null: the bundled one"),
            "ffmpeg_in_use": {"oneOf": [_ref("FFmpegInUse"), {"type": "null"}]},
            "notifications": {"type": "boolean"},
            "api_port": {"type": "integer", "description": "where the API listens now"},
            "api_bind": {"type": "string"},
            "autostart": _ref("Autostart"),
        },
        ["ffmpeg", "ffmpeg_in_use", "notifications", "api_port", "api_bind", "autostart"],
    ),
    "SettingsPatch": _obj(
        {
            "ffmpeg": _nullable(
                "string", description="full path of an ffmpeg 5 or newer; null: the bundled one"
            ),
            "notifications": {"type": "boolean"},
            "autostart": {"type": "boolean", "description": "launch Cascade at login"},
        },
        closed=True,
    ),
    "Platform": _obj(
        {
            "id": {"type": "string", "enum": PLATFORMS},
            "label": {"type": "string"},
            "default_url": _nullable("string"),
            "backup_url": _nullable("string"),
            "needs_key": {"type": "boolean"},
            "schemes": {"type": "array", "items": {"type": "string"}},
            "url_hint": {"type": "string"},
            "key_help": {"type": "string"},
        },
        ["id", "label", "default_url", "needs_key", "url_hint"],
    ),
    "Platforms": _obj({"platforms": {"type": "array", "items": _ref("Platform")}}, ["platforms"]),
}

_ERRORS = {
    400: "the body is not a JSON object",
    401: "no token, or a wrong one",
    403: "a foreign Host or Origin",
    404: "no such group, target or profile",
    409: "not possible in the current state; nothing changed",
    413: "the body is too large",
    422: "a value is wrong; error.field says which",
    503: "the disk or the keyring refused",
}


def _response(description: str, schema: str | None) -> JsonObject:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _op(
    summary: str,
    ok: str | None,
    *,
    status: int = 200,
    errors: tuple[int, ...] = (401, 403),
    body: str | None = None,
    tag: str,
    op_id: str,
) -> JsonObject:
    responses: JsonObject = {str(status): _response(summary, ok)}
    for code in errors:
        responses[str(code)] = _response(_ERRORS[code], "Error")
    op: JsonObject = {
        "summary": summary,
        "operationId": op_id,
        "tags": [tag],
        "responses": responses,
    }
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return op


ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
READ_ONE = (401, 403, 404)
ACT = (401, 403, 404, 409, 503)
EDIT = (400, 401, 403, 404, 409, 413, 422, 503)


def _paths() -> JsonObject:
    paths: JsonObject = {
        "/healthz": {
            "get": {
                **_op("the agent answers", "Health", tag="health", op_id="healthz"),
                "security": [],
            }
        },
        f"{P}/openapi.json": {
            "get": {
                "summary": "this document",
                "operationId": "openapi",
                "tags": ["meta"],
                "responses": {
                    "200": {
                        "description": "this document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "401": _response(_ERRORS[401], "Error"),
                    "403": _response(_ERRORS[403], "Error"),
                },
            }
        },
        f"{P}/status": {
            "get": _op("ingest, groups, targets, totals", "Status", tag="live", op_id="status")
        },
        f"{P}/stats": {"get": _op("the figures alone", "Stats", tag="live", op_id="stats")},
        f"{P}/events": {
            "get": {
                "summary": "a WebSocket of typed events",
                "description": (
                    "First a 'hello' message with the full status, then one JSON message per "
                    "event: process.state, ingest.state, group.state, target.state, stats (at "
                    "most once a second per group), log, error (with a hint). The token may be "
                    "passed as ?token= since browsers cannot set WebSocket headers; the "
                    "dashboard's session cookie is accepted with the agent's own Origin."
                ),
                "operationId": "events",
                "tags": ["live"],
                "parameters": [
                    {
                        "name": "kinds",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "comma-separated event types to keep",
                    },
                    {
                        "name": "token",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "101": {"description": "switching to the WebSocket protocol"},
                    "400": _response("not a WebSocket upgrade request", "Error"),
                    "401": _response(_ERRORS[401], "Error"),
                    "403": _response(_ERRORS[403], "Error"),
                },
            }
        },
        f"{P}/start-all": {
            "post": _op(
                "start every group (none starts if one cannot)",
                "Status",
                errors=ACT,
                tag="live",
                op_id="startAll",
            )
        },
        f"{P}/stop-all": {
            "post": _op("stop every group", "Status", errors=ACT, tag="live", op_id="stopAll")
        },
        f"{P}/session": {
            "get": _op(
                "whether the caller is let in, and how (the token or the dashboard's cookie)",
                "Session",
                tag="dashboard",
                op_id="getSession",
            )
        },
        f"{P}/token": {
            "get": _op(
                "the API token itself (the dashboard's Reveal); Cache-Control: no-store",
                "Token",
                tag="meta",
                op_id="getToken",
            )
        },
        f"{P}/dashboard/link": {
            "post": _op(
                "a one-time link that opens the dashboard logged in (60 s)",
                "DashboardLink",
                tag="dashboard",
                op_id="dashboardLink",
            )
        },
        f"{P}/logs": {
            "get": {
                **_op(
                    "the recent log lines of the agent and its FFmpeg children, redacted",
                    "Logs",
                    errors=(401, 403, 422),
                    tag="dashboard",
                    op_id="getLogs",
                ),
                "parameters": [
                    {
                        "name": "source",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 200},
                        "description": "one source, or all under a prefix ending in ':'",
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 2000},
                        "description": "the last N lines (default 500)",
                    },
                ],
            }
        },
        f"{P}/encoders": {
            "get": _op(
                "the encoders, each usable here or not with the reason (from the probe)",
                "Encoders",
                errors=(401, 403, 409),
                tag="setup",
                op_id="getEncoders",
            )
        },
        f"{P}/encoders/probe": {
            "post": _op(
                "probe FFmpeg again, ignoring the cache",
                "Encoders",
                errors=(401, 403, 409),
                tag="setup",
                op_id="probeEncoders",
            )
        },
        f"{P}/settings": {
            "get": _op("the agent-wide settings", "Settings", tag="setup", op_id="getSettings"),
            "patch": _op(
                "change FFmpeg (only while nothing is live), notifications, launch at login",
                "Settings",
                errors=(400, 401, 403, 409, 413, 422, 503),
                body="SettingsPatch",
                tag="setup",
                op_id="patchSettings",
            ),
        },
        f"{P}/platforms": {
            "get": _op(
                "the platform presets a set-up form offers",
                "Platforms",
                tag="setup",
                op_id="listPlatforms",
            )
        },
        f"{P}/token/rotate": {
            "post": _op(
                "replace the token (stored, then required); the answer never holds it",
                None,
                status=204,
                errors=(401, 403, 409, 503),
                tag="meta",
                op_id="rotateToken",
            )
        },
        f"{P}/show": {
            "post": _op(
                "ask the agent to show itself (the tray says it is running)",
                "Shown",
                tag="live",
                op_id="show",
            )
        },
        f"{P}/profile": {
            "get": _op("the active profile's set-up", "Profile", tag="setup", op_id="getProfile")
        },
        f"{P}/profiles": {
            "get": _op("the profiles", "Profiles", tag="setup", op_id="listProfiles"),
            "post": _op(
                "create a profile: the default set-up, or a copy of another (with its keys)",
                "Profiles",
                status=201,
                errors=(400, 401, 403, 409, 413, 422, 503),
                body="ProfileCreate",
                tag="setup",
                op_id="createProfile",
            ),
        },
        f"{P}/profiles/{{id}}": {
            "parameters": ID,
            "delete": _op(
                "delete a profile that is not the active one, and its stored keys",
                None,
                status=204,
                errors=ACT,
                tag="setup",
                op_id="deleteProfile",
            ),
        },
        f"{P}/profiles/{{id}}/activate": {
            "parameters": ID,
            "post": _op(
                "run this profile (only while nothing is live)",
                "Profiles",
                errors=ACT,
                tag="setup",
                op_id="activateProfile",
            ),
        },
        f"{P}/ingest": {
            "get": _op("where OBS sends", "IngestConfig", tag="setup", op_id="getIngest"),
            "patch": _op(
                "change the ingest (not while a stream comes in)",
                "IngestConfig",
                errors=EDIT,
                body="IngestPatch",
                tag="setup",
                op_id="patchIngest",
            ),
        },
        f"{P}/groups": {
            "get": _op("every group's state", "GroupList", tag="live", op_id="listGroups"),
            "post": _op(
                "add a group",
                "GroupConfig",
                status=201,
                errors=EDIT,
                body="GroupCreate",
                tag="setup",
                op_id="addGroup",
            ),
        },
        f"{P}/groups/{{id}}": {
            "parameters": ID,
            "get": _op(
                "one group's state", "GroupState", errors=READ_ONE, tag="live", op_id="getGroup"
            ),
            "patch": _op(
                "change a group",
                "GroupConfig",
                errors=EDIT,
                body="GroupPatch",
                tag="setup",
                op_id="patchGroup",
            ),
            "delete": _op(
                "remove a group and its targets (not while live)",
                None,
                status=204,
                errors=ACT,
                tag="setup",
                op_id="deleteGroup",
            ),
        },
        f"{P}/groups/{{id}}/targets": {
            "parameters": ID,
            "post": _op(
                "add a target to the group",
                "TargetConfig",
                status=201,
                errors=EDIT,
                body="TargetCreate",
                tag="setup",
                op_id="addTarget",
            ),
        },
        f"{P}/targets/{{id}}": {
            "parameters": ID,
            "get": _op(
                "one target's set-up and state",
                "TargetDetail",
                errors=READ_ONE,
                tag="live",
                op_id="getTarget",
            ),
            "patch": _op(
                "change a target",
                "TargetConfig",
                errors=EDIT,
                body="TargetPatch",
                tag="setup",
                op_id="patchTarget",
            ),
            "delete": _op(
                "remove a target (not while it sends)",
                None,
                status=204,
                errors=ACT,
                tag="setup",
                op_id="deleteTarget",
            ),
        },
        f"{P}/targets/{{id}}/key": {
            "parameters": ID,
            "put": _op(
                "store the target's stream key (write-only)",
                None,
                status=204,
                errors=EDIT,
                body="KeyPut",
                tag="setup",
                op_id="putTargetKey",
            ),
        },
    }
    for action, summary in (
        ("start", "start the group now (or as soon as OBS publishes)"),
        ("stop", "stop the group; its targets end cleanly"),
        ("toggle", "start a stopped group or stop a running one"),
        ("arm", "go live whenever OBS publishes, until disarmed"),
        ("disarm", "withdraw the standing order"),
    ):
        paths[f"{P}/groups/{{id}}/{action}"] = {
            "parameters": ID,
            "post": _op(
                summary,
                "GroupState",
                errors=ACT,
                tag="live",
                op_id=f"{action}Group",
            ),
        }
    for action, summary in (
        ("enable", "switch the target on; no other target is touched"),
        ("disable", "switch the target off; no other target is touched"),
        ("toggle", "flip the target"),
    ):
        paths[f"{P}/targets/{{id}}/{action}"] = {
            "parameters": ID,
            "post": _op(
                summary,
                "TargetActionResult",
                errors=ACT,
                tag="live",
                op_id=f"{action}Target",
            ),
        }
    return paths


@functools.cache
def _document() -> JsonObject:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Cascade local control API",
            "version": __version__,
            "description": (
                "Start, stop and toggle Cascade's outputs and edit its active profile. Bound to "
                "127.0.0.1; every call but /healthz needs 'Authorization: Bearer <token>' "
                "('cascade token' prints it), or the dashboard's session cookie "
                "(cascade_session; a change then needs the agent's own Origin). Ids are the "
                "profile's slugs."
            ),
            "license": {"name": "GPL-3.0-or-later", "identifier": "GPL-3.0-or-later"},
        },
        "servers": [{"url": "http://127.0.0.1:47830"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def openapi_document() -> JsonObject:
    """The OpenAPI 3.1 document of the API (a fresh copy each call)."""
    return copy.deepcopy(_document())
