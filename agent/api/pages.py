"""Serving the dashboard's files: which paths are pages, their headers, and safe file lookup.

The pages (``/``, ``/static/...``, ``/login``, ``/logout``) need no token to load: they hold
no secret, and every API call they make needs a session or the token. The Host check applies
to them as to the API (DNS rebinding). Every answer of the agent carries
:data:`SECURITY_HEADERS`: a Content-Security-Policy that allows nothing but the agent's own
files (no inline script or style, no other site, no framing), ``nosniff``, no Referer (a
login link's code never leaks) and no framing.
"""

from __future__ import annotations

from pathlib import Path

#: The page routes, left out of the OpenAPI document (they are not part of the API).
PAGE_PATHS = frozenset({"/", "/static/{path}", "/login", "/logout"})

CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

# Set here rather than guessed from the system's MIME table, which differs between machines
# (some map .js to text/plain, which nosniff would then refuse to run).
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".webp": "image/webp",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
FALLBACK_TYPE = "application/octet-stream"
MAX_PATH = 255


def content_type(path: Path) -> str:
    """The Content-Type a dashboard file is served with."""
    return CONTENT_TYPES.get(path.suffix.lower(), FALLBACK_TYPE)


def static_file(static_dir: Path, relative: str) -> Path | None:
    """The file ``relative`` names under ``static_dir``, or None when there is none to serve.

    Refused (None): an empty or over-long path, a backslash or NUL, any part that is empty,
    ``.``, ``..`` or hidden (``.git``), a directory (no listings), and anything that resolves
    outside ``static_dir`` (a symlink pointing out).
    """
    if not relative or len(relative) > MAX_PATH or "\\" in relative or "\0" in relative:
        return None
    parts = relative.split("/")
    if any(not part or part.startswith(".") or part != part.strip() for part in parts):
        return None
    root = static_dir.resolve()
    try:
        candidate = (root / relative).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return None
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate
