"""The dashboard's files: served at ``/`` and ``/static/...`` without a token, with the right
content types and security headers, and nothing outside the static folder, ever.

The files come from the test's own folder (``site`` in conftest), so these tests do not
depend on the shipped pages; the last class checks the shipped folder is where the package
says it is.
"""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import pytest

from agent.api.pages import CSP, static_file
from agent.dashboard import STATIC_DIR
from tests.api.conftest import OUTSIDE, PAGES, Site

SECURITY = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
ROOT = Path(__file__).resolve().parents[2]


async def raw_get(site: Site, path: str) -> tuple[int, str]:
    """GET ``path`` exactly as written: an HTTP client would resolve '..' and '.' first."""
    port = site.guard.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode("utf-8", "replace")


def assert_secure(headers: object) -> None:
    for name, value in SECURITY.items():
        assert headers[name] == value, (name, headers)  # type: ignore[index]


class TestServing:
    async def test_the_root_is_the_index_page_without_a_token(self, site: Site) -> None:
        resp = await site.client.get("/")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
        assert await resp.text() == PAGES["index.html"]

    @pytest.mark.parametrize(
        ("path", "kind"),
        [
            pytest.param("app.js", "text/javascript; charset=utf-8", id="js"),
            pytest.param("style.css", "text/css; charset=utf-8", id="css"),
            pytest.param("img/logo.svg", "image/svg+xml", id="svg-in-a-folder"),
            pytest.param("index.html", "text/html; charset=utf-8", id="html"),
        ],
    )
    async def test_static_files_have_their_content_type(
        self, site: Site, path: str, kind: str
    ) -> None:
        resp = await site.client.get(f"/static/{path}")
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"] == kind
        assert await resp.text() == PAGES[path]

    @pytest.mark.parametrize("path", ["/", "/static/app.js", "/static/style.css"])
    async def test_pages_carry_the_security_headers_and_are_revalidated(
        self, site: Site, path: str
    ) -> None:
        resp = await site.client.get(path)
        assert resp.status == 200
        assert_secure(resp.headers)
        assert resp.headers["Cache-Control"] == "no-cache"
        assert "Access-Control-Allow-Origin" not in resp.headers

    async def test_api_answers_and_errors_carry_the_security_headers_too(self, site: Site) -> None:
        ok = await site.client.get("/api/v1/status", headers=site.bearer())
        refused = await site.client.get("/api/v1/status")
        missing = await site.client.get("/static/nothing.js")
        assert (ok.status, refused.status, missing.status) == (200, 401, 404)
        for resp in (ok, refused, missing):
            assert_secure(resp.headers)

    async def test_a_head_request_answers_like_get_without_a_body(self, site: Site) -> None:
        resp = await site.client.head("/static/app.js")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert await resp.read() == b""

    async def test_a_missing_index_is_a_404_saying_the_files_are_not_installed(
        self, site: Site
    ) -> None:
        (site.static_dir / "index.html").unlink()
        resp = await site.client.get("/")
        body = await resp.json()
        assert resp.status == 404
        assert "not installed" in body["error"]["message"]


class TestRefused:
    @pytest.mark.parametrize(
        "path",
        [
            pytest.param("/static/../secret.txt", id="dot-dot"),
            pytest.param("/static/%2e%2e/secret.txt", id="encoded-dot-dot"),
            pytest.param("/static/img/%2e%2e/%2e%2e/secret.txt", id="deeper-dot-dot"),
            pytest.param("/static/..%2fsecret.txt", id="encoded-slash"),
            pytest.param("/static/..%5csecret.txt", id="backslash"),
            pytest.param("/static/%2fetc%2fpasswd", id="absolute"),
            pytest.param("/static/link-out.txt", id="symlink-out"),
            pytest.param("/static/.hidden", id="hidden-file"),
            pytest.param("/static/img//logo.svg", id="empty-part"),
            pytest.param("/static/./app.js", id="dot-part"),
            pytest.param("/static/app.js%00.png", id="nul"),
        ],
    )
    async def test_nothing_outside_the_folder_or_hidden_is_served(
        self, site: Site, path: str
    ) -> None:
        status, text = await raw_get(site, path)
        assert status == 404, (status, text)
        assert OUTSIDE not in text
        assert PAGES[".hidden"] not in text

    @pytest.mark.parametrize("path", ["/static/img", "/static/img/", "/static/empty-folder"])
    async def test_a_folder_is_never_listed(self, site: Site, path: str) -> None:
        resp = await site.client.get(path)
        assert resp.status == 404
        assert "logo.svg" not in await resp.text()

    async def test_a_foreign_host_gets_no_page(self, site: Site) -> None:
        """DNS rebinding: a page whose name now points at 127.0.0.1 cannot load them."""
        resp = await site.client.get("/", headers={"Host": f"evil.example:{site.guard.port}"})
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "forbidden_host"

    async def test_a_foreign_origin_gets_no_file(self, site: Site) -> None:
        resp = await site.client.get("/static/app.js", headers={"Origin": "http://evil.example"})
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "forbidden_origin"


class TestStaticFileLookup:
    """:func:`static_file` alone, on paths an HTTP client would normalise away."""

    @pytest.mark.parametrize(
        "relative",
        ["", "../secret.txt", "img/../../secret.txt", "/etc/passwd", "a\\b", "x\0y", " app.js"],
    )
    def test_unsafe_paths_name_no_file(self, tmp_path: Path, relative: str) -> None:
        (tmp_path / "static").mkdir()
        (tmp_path / "static" / "app.js").write_text("x")
        (tmp_path / "secret.txt").write_text("x")
        assert static_file(tmp_path / "static", relative) is None

    def test_a_file_in_a_subfolder_is_found(self, tmp_path: Path) -> None:
        (tmp_path / "img").mkdir()
        (tmp_path / "img" / "a.png").write_bytes(b"\x89PNG")
        assert static_file(tmp_path, "img/a.png") == (tmp_path / "img" / "a.png").resolve()


class TestShippedFiles:
    def test_the_static_folder_is_package_data(self) -> None:
        pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
        data = pyproject["tool"]["setuptools"]["package-data"]
        assert "static/*" in " ".join(data["agent.dashboard"])
        assert STATIC_DIR == ROOT / "agent" / "dashboard" / "static"
