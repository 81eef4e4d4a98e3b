"""The OpenAPI document: it matches the routes exactly, it is valid OpenAPI 3.1, and it is
what ``GET /api/v1/openapi.json`` serves."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import schemathesis
from aiohttp import web
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from schemathesis.core.result import Ok

from agent.api.app import GUARD, create_app
from agent.api.openapi import openapi_document
from agent.api.pages import PAGE_PATHS
from agent.api.security import Guard
from agent.control import Control
from agent.core.agent import Agent
from agent.paths import config_dir
from agent.store.profiles import ProfileStore
from agent.store.secrets import SecretStore

TOKEN = "openapi-test-token-7c1d9e04b2a6"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _no_secrets() -> SecretStore:
    raise AssertionError("the OpenAPI tests never touch stream keys")


def _app() -> web.Application:
    """The real app around an agent that was never started (no FFmpeg, no network)."""
    cfg = config_dir()
    control = Control(
        Agent(cfg), ProfileStore(cfg), secrets=_no_secrets, keys_for=lambda name: lambda t: None
    )
    return create_app(control, Guard(TOKEN, port=0))


def _routed() -> set[tuple[str, str]]:
    """(method, path) of every API route; aiohttp's automatic HEAD next to each GET and the
    dashboard's pages (not part of the API) left out."""
    found = set()
    for route in _app().router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        assert path, f"a route without a plain or templated path: {route!r}"
        # aiohttp's '{id:regex}' is '{id}' in OpenAPI; the formatter already drops the regex.
        path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path)
        if path not in PAGE_PATHS:
            found.add((route.method.lower(), path))
    return found


def _documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in doc["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references are used: {ref}"
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


# -- routes and document agree ----------------------------------------------------------------


def test_every_route_is_documented_with_its_method() -> None:
    missing = _routed() - _documented(openapi_document())
    assert not missing, f"routes missing from the OpenAPI document: {sorted(missing)}"


def test_every_documented_operation_is_routed() -> None:
    extra = _documented(openapi_document()) - _routed()
    assert not extra, f"documented but not routed: {sorted(extra)}"


def test_the_comparison_sees_every_route() -> None:
    """Guards the two tests above against comparing two empty sets."""
    routed = _routed()
    assert ("get", "/healthz") in routed
    assert ("put", "/api/v1/targets/{id}/key") in routed
    assert ("post", "/api/v1/groups/{id}/toggle") in routed
    assert len(routed) == len(_documented(openapi_document())) >= 30


# -- a valid OpenAPI 3.1 document -------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = openapi_document()
    assert doc["openapi"].startswith("3.1.")
    validate(doc, cls=OpenAPIV31SpecValidator)  # raises, naming the first problem


def test_every_reference_resolves() -> None:
    doc = openapi_document()
    refs = set(_refs(doc))
    assert refs, "the document uses no $ref at all"
    for ref in sorted(refs):
        _resolve(doc, ref)


def test_every_component_schema_is_used() -> None:
    doc = openapi_document()
    used = {ref.rsplit("/", 1)[1] for ref in _refs(doc) if ref.startswith("#/components/schemas/")}
    unused = set(doc["components"]["schemas"]) - used
    assert not unused, f"schemas nothing refers to: {sorted(unused)}"


def test_operation_ids_are_present_and_unique() -> None:
    ids = [op.get("operationId") for _, _, op in _operations(openapi_document())]
    assert all(ids), "an operation has no operationId"
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert not duplicates, f"operationIds used twice: {sorted(duplicates)}"


def test_every_operation_has_a_summary_and_described_responses() -> None:
    for path, method, op in _operations(openapi_document()):
        assert op.get("summary"), f"{method.upper()} {path} has no summary"
        assert op["responses"], f"{method.upper()} {path} documents no response"
        for status, response in op["responses"].items():
            assert re.fullmatch(r"[1-5]\d\d", status), f"{method.upper()} {path}: {status}"
            assert response.get("description"), f"{method.upper()} {path} {status}: no text"


def test_every_path_parameter_is_declared_and_required() -> None:
    doc = openapi_document()
    for path, item in doc["paths"].items():
        in_path = set(re.findall(r"\{(\w+)\}", path))
        for method in (m for m in item if m in HTTP_METHODS):
            params = [*item.get("parameters", []), *item[method].get("parameters", [])]
            declared = {p["name"] for p in params if p["in"] == "path"}
            assert declared == in_path, f"{method.upper()} {path}: path parameters {declared}"
            assert all(p["required"] for p in params if p["in"] == "path")


def test_state_changes_are_never_a_get() -> None:
    """Only POST/PUT/PATCH/DELETE change state: no GET has a request body."""
    for path, method, op in _operations(openapi_document()):
        if method == "get":
            assert "requestBody" not in op, f"GET {path} takes a body"


def test_everything_but_healthz_needs_the_token() -> None:
    doc = openapi_document()
    assert doc["security"] == [{"bearer": []}]
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    open_ops = [(m, p) for p, m, op in _operations(doc) if op.get("security") == []]
    assert open_ops == [("get", "/healthz")]
    for path, method, op in _operations(doc):
        if (method, path) != ("get", "/healthz"):
            assert "401" in op["responses"], f"{method.upper()} {path} does not document 401"


def test_schemathesis_loads_every_operation() -> None:
    """The fuzz run's view of the document: every operation can be generated from."""
    schema = schemathesis.openapi.from_dict(openapi_document())
    results = list(schema.get_all_operations())
    errors = [r for r in results if not isinstance(r, Ok)]
    assert not errors, errors
    labels = {r.ok().label for r in results if isinstance(r, Ok)}
    expected = {f"{m.upper()} {p}" for m, p in _documented(openapi_document())}
    assert labels == expected


def test_the_document_is_plain_json_and_a_fresh_copy_each_time() -> None:
    first = openapi_document()
    assert json.loads(json.dumps(first)) == first
    first["paths"].clear()
    assert openapi_document()["paths"], "a caller's change leaked into the next document"


# -- served as it is --------------------------------------------------------------------------


async def test_openapi_json_serves_exactly_the_document(aiohttp_client: Any) -> None:
    app = _app()
    client = await aiohttp_client(app)
    app[GUARD].port = client.server.port  # the client's Host is 127.0.0.1:<that port>
    resp = await client.get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    assert await resp.json() == openapi_document()


async def test_openapi_json_needs_the_token(aiohttp_client: Any) -> None:
    app = _app()
    client = await aiohttp_client(app)
    app[GUARD].port = client.server.port
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"
