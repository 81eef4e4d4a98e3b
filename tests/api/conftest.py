"""An API under test: a real agent (real FFmpeg, a real RTMP ingest) behind the real app.

``api`` builds, for one test:

- a :class:`ProfileStore` in the test's config directory holding profile ``studio`` (active)
  and ``spare``;
- a :class:`VaultStore` (cheap Argon2id) as the secret store, so ``PUT .../key`` really
  stores a key that the relay then reads back through :func:`resolve_key`;
- a started :class:`Agent` whose ingest listens on a free port;
- the app from :func:`create_app` in aiohttp's test server, its :class:`Guard` told the
  server's real port so the test client's ``Host`` (``127.0.0.1:PORT``) is the agent's own.

The ``studio`` profile::

    main   passthrough   site  custom rtmp://127.0.0.1:<closed port>/live  (no key needed)
                         rec   recording into <config dir>/recordings/, disabled
    hd     reencode      yt    youtube, key in the secret store (none stored yet)

``site`` is lighter, for the dashboard's pages and logins: the real app around an agent that
was never started, serving dashboard files from the test's own folder (:data:`PAGES`).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, DummyCookieJar
from aiohttp.test_utils import TestClient

from agent.api.app import SESSION_COOKIE, create_app
from agent.api.security import Guard
from agent.api.token import new_token
from agent.control import Control
from agent.core.agent import Agent
from agent.core.model import (
    Group,
    GroupMode,
    IngestSettings,
    Platform,
    Profile,
    Target,
    VideoSettings,
)
from agent.core.push import KeySource
from agent.dashboard import Dashboard
from agent.store.codec import KEYRING_REF
from agent.store.crypto import KdfParams
from agent.store.profiles import ProfileStore
from agent.store.secrets import resolve_key
from agent.store.vault import VAULT_FILENAME, VaultStore
from tests.streams import free_port, wait_listening

TOKEN = "api-test-token-3f9c2e7a51d04b68"
PASSPHRASE = "api-tests-vault-passphrase"
CHEAP = KdfParams(time_cost=1, memory_kib=8, parallelism=1)  # real defaults: t=3 m=64 MiB
INGEST_KEY = "obs-ingest-key"


def studio_profile(ingest_port: int, closed_port: int, recordings: Path) -> Profile:
    return Profile(
        name="studio",
        ingest=IngestSettings(port=ingest_port, key=INGEST_KEY),
        groups=[
            Group(
                id="main",
                name="Main",
                targets=[
                    Target(
                        id="site",
                        name="Own server",
                        platform=Platform.CUSTOM,
                        url=f"rtmp://127.0.0.1:{closed_port}/live",
                    ),
                    Target(
                        id="rec",
                        platform=Platform.RECORDING,
                        url=f"{recordings}/",
                        enabled=False,
                    ),
                ],
            ),
            Group(
                id="hd",
                mode=GroupMode.REENCODE,
                video=VideoSettings(width=640, height=360, bitrate_kbps=800, preset="ultrafast"),
                targets=[Target(id="yt", platform=Platform.YOUTUBE, key_ref=KEYRING_REF)],
            ),
        ],
    )


@dataclass
class Api:
    """The app under test and everything behind it, with request helpers that authenticate."""

    client: TestClient[Any, Any]
    guard: Guard
    control: Control
    agent: Agent
    store: ProfileStore
    vault: VaultStore
    config_dir: Path
    token: str = TOKEN
    rotations: list[str] = field(default_factory=list)  # tokens POST token/rotate stored

    @property
    def port(self) -> int:
        return self.guard.port

    def auth(self, **extra: str) -> dict[str, str]:
        """Headers with the right token, plus ``extra``."""
        return {"Authorization": f"Bearer {self.token}", **extra}

    async def call(
        self, method: str, path: str, *, json_body: Any = None, **kwargs: Any
    ) -> ClientResponse:
        headers = self.auth(**kwargs.pop("headers", {}))
        if json_body is not None:
            kwargs["json"] = json_body
        resp = await self.client.request(method, path, headers=headers, **kwargs)
        # No CORS header, ever: checked on every answer of every test that calls through here.
        assert "Access-Control-Allow-Origin" not in resp.headers, resp.headers
        return resp

    async def get(self, path: str, **kwargs: Any) -> ClientResponse:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, json_body: Any = None, **kwargs: Any) -> ClientResponse:
        return await self.call("POST", path, json_body=json_body, **kwargs)

    async def patch(self, path: str, json_body: Any = None, **kwargs: Any) -> ClientResponse:
        return await self.call("PATCH", path, json_body=json_body, **kwargs)

    async def put(self, path: str, json_body: Any = None, **kwargs: Any) -> ClientResponse:
        return await self.call("PUT", path, json_body=json_body, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> ClientResponse:
        return await self.call("DELETE", path, **kwargs)

    async def ok(self, method: str, path: str, json_body: Any = None, status: int = 200) -> Any:
        """Call, check the status, and return the JSON answer (None for a 204)."""
        resp = await self.call(method, path, json_body=json_body)
        text = await resp.text()
        assert resp.status == status, f"{method} {path}: {resp.status} {text}"
        return json.loads(text) if text else None

    def saved(self, name: str = "studio") -> dict[str, Any]:
        """The profile file on disk, as JSON."""
        data: dict[str, Any] = json.loads(self.store.path_of(name).read_text("utf-8"))
        return data

    def saved_group(self, group_id: str, name: str = "studio") -> dict[str, Any]:
        return next(g for g in self.saved(name)["groups"] if g["id"] == group_id)


@pytest.fixture
def vault(config_dir: Path) -> VaultStore:
    return VaultStore(config_dir / VAULT_FILENAME, PASSPHRASE, kdf=CHEAP)


@pytest.fixture
def keys_for(vault: VaultStore) -> Callable[[str], KeySource]:
    """The relay's key source for a profile: the vault, as ``cascade run`` reads it."""

    def for_profile(name: str) -> KeySource:
        return lambda target: resolve_key(target, vault, name, env={})

    return for_profile


@pytest.fixture
async def agent(config_dir: Path, keys_for: Callable[[str], KeySource]) -> AsyncIterator[Agent]:
    store = ProfileStore(config_dir)
    profile = studio_profile(free_port(), free_port(), config_dir / "recordings")
    store.save(profile)
    store.save(
        Profile(
            name="spare",
            ingest=IngestSettings(port=free_port()),
            groups=[Group(id="backup-main")],
        )
    )
    store.use("studio")
    agent = Agent(config_dir, profile=store.load("studio"), keys=keys_for("studio"))
    await agent.start()
    try:
        assert agent.relay is not None, agent.ffmpeg_error
        await wait_listening(agent.profile.ingest.port)
        yield agent
    finally:
        await agent.stop()


@pytest.fixture
async def api(
    agent: Agent,
    aiohttp_client: Any,
    config_dir: Path,
    vault: VaultStore,
    keys_for: Callable[[str], KeySource],
) -> Api:
    store = ProfileStore(config_dir)
    control = Control(agent, store, secrets=lambda: vault, keys_for=keys_for)
    guard = Guard(TOKEN, port=0)
    rotations: list[str] = []

    def rotate() -> str:  # what TokenStore.rotate does: store a new token, return it
        rotations.append(new_token())
        return rotations[-1]

    app = create_app(control, guard, rotate_token=rotate)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    guard.port = client.server.port  # type: ignore[assignment]
    return Api(client, guard, control, agent, store, vault, config_dir, rotations=rotations)


# -- the dashboard's pages and logins -------------------------------------------------------

#: The dashboard files ``site`` serves (relative path -> content).
PAGES = {
    "index.html": "<!doctype html><title>Cascade</title><script src=/static/app.js></script>",
    "app.js": "export const ready = true;\n",
    "style.css": "body { margin: 0; }\n",
    "img/logo.svg": "<svg xmlns='http://www.w3.org/2000/svg'/>",
    ".hidden": "not served",
}
OUTSIDE = "outside the static folder"


@dataclass
class Site:
    """The app serving dashboard files from ``static_dir``; its client keeps no cookies, so
    each request carries exactly the cookie a test gives it."""

    client: TestClient[Any, Any]
    guard: Guard
    dashboard: Dashboard
    agent: Agent
    static_dir: Path
    token: str = TOKEN

    @property
    def origin(self) -> str:
        """The agent's own origin, as its pages send it."""
        return f"http://127.0.0.1:{self.guard.port}"

    def with_session(self, session: str, **extra: str) -> dict[str, str]:
        """Headers carrying the session cookie, plus ``extra``."""
        return {"Cookie": f"{SESSION_COOKIE}={session}", **extra}

    def bearer(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **extra}


@pytest.fixture
async def site(tmp_path: Path, aiohttp_client: Any) -> Site:
    static = tmp_path / "static"
    for name, text in PAGES.items():
        (static / name).parent.mkdir(parents=True, exist_ok=True)
        (static / name).write_text(text, "utf-8")
    (static / "empty-folder").mkdir()
    (tmp_path / "secret.txt").write_text(OUTSIDE, "utf-8")
    (static / "link-out.txt").symlink_to(tmp_path / "secret.txt")
    cfg = Path(os.environ["CASCADE_CONFIG_DIR"])
    store = ProfileStore(cfg)
    store.save(Profile(name="studio", groups=[Group(id="main")]))
    store.use("studio")
    agent = Agent(cfg, profile=store.load("studio"))

    def no_secrets() -> Any:
        raise AssertionError("the dashboard's page tests never touch stream keys")

    control = Control(agent, store, secrets=no_secrets, keys_for=lambda name: lambda t: None)
    guard = Guard(TOKEN, port=0)
    dashboard = Dashboard(lambda: guard.own_origin, static_dir=static)
    app = create_app(control, guard, dashboard=dashboard)
    client: TestClient[Any, Any] = await aiohttp_client(app, cookie_jar=DummyCookieJar())
    guard.port = client.server.port  # type: ignore[assignment]
    return Site(client, guard, dashboard, agent, static)
