"""The ``cascade`` command line.

``cascade run`` starts the agent; ``cascade doctor`` says what this machine gives it.
Each command is a thin client of :mod:`agent.core`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agent import __version__, commands, remote
from agent.core.agent import Agent
from agent.core.settings import load_settings
from agent.errors import CascadeError
from agent.logs import setup_logging
from agent.paths import config_dir, log_dir
from agent.platform.watchdog import WATCHDOG_FLAG

if TYPE_CHECKING:
    from agent.api.server import ApiServer
    from agent.core.model import Target

log = logging.getLogger("agent.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cascade",
        description="Cascade: one stream from OBS, relayed to every platform at once.",
    )
    parser.add_argument("--version", action="version", version=f"cascade {__version__}")
    parser.add_argument(
        "--config-dir",
        metavar="DIR",
        help="where profiles and settings live (default: the OS config directory; "
        "also $CASCADE_CONFIG_DIR)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="start the agent and keep it running")
    run.add_argument("--headless", action="store_true", help="run without the tray icon")
    run.add_argument("--port", type=int, help="local API port (default 47830)")
    run.add_argument(
        "--bind",
        metavar="ADDR",
        help="API address (default 127.0.0.1); another one is reachable from the network",
    )

    demo = sub.add_parser(
        "demo", help="relay a synthetic test stream to local outputs and check every one"
    )
    demo.add_argument("--seconds", type=float, default=10.0, help="length of the test stream")

    commands.add_parsers(sub)
    remote.add_parsers(sub)  # status, start|stop|toggle ID, start-all, stop-all, token

    autostart = sub.add_parser("autostart", help="launch Cascade at login: enable, disable, status")
    autostart.add_argument("action", choices=("enable", "disable", "status"))
    autostart.add_argument("--json", action="store_true", help="print the result as JSON")

    doctor = sub.add_parser("doctor", help="check FFmpeg, encoders, keyring and the API port")
    doctor.add_argument("--port", type=int, help="API port to check")
    doctor.add_argument(
        "--refresh", action="store_true", help="probe FFmpeg again instead of using the cache"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cascade`` console script."""
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == [WATCHDOG_FLAG]:
        # A frozen build starts its containment watchdog as "cascade --cascade-watchdog".
        from agent.platform.watchdog import main as watchdog_main

        return watchdog_main()
    args = build_parser().parse_args(raw)
    cfg = config_dir(args.config_dir)
    try:
        if args.command == "run":
            return _run(args, cfg)
        if args.command == "doctor":
            return _doctor(args, cfg)
        if args.command == "demo":
            return _demo(args)
        if args.command == "autostart":
            return _autostart(args, cfg)
        if args.command in ("profile", "group", "target", "key"):
            return commands.run(args, cfg)
        if args.command in remote.COMMANDS:
            return remote.run(args, cfg)
    except CascadeError as exc:
        print(f"cascade: {exc}", file=sys.stderr)
        return 1
    build_parser().print_help()
    return 2


def _doctor(args: argparse.Namespace, cfg: Path) -> int:
    from agent.doctor import diagnose

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    settings = load_settings(cfg)
    report = diagnose(
        cfg,
        ffmpeg_setting=settings.ffmpeg,
        port=args.port or settings.api_port,
        refresh=args.refresh,
    )
    print("\n".join(report.lines))
    if report.problems:
        print(f"\n{len(report.problems)} problem(s) found.", file=sys.stderr)
        return 1
    return 0


def _autostart(args: argparse.Namespace, cfg: Path) -> int:
    """``cascade autostart enable|disable|status``: one line saying where things stand."""
    import json

    from agent.platform.autostart import for_this_machine

    entry = for_this_machine(cfg)
    act = {"enable": entry.enable, "disable": entry.disable, "status": entry.status}
    state = act[args.action]()
    if args.json:
        print(json.dumps(state.to_json()))
    elif not state.supported:
        print(f"Launch at login is not available: {state.detail}")
    else:
        print(f"Launch at login is {'on' if state.enabled else 'off'}: {state.detail}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from agent.demo import run_demo

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.ERROR)
    return asyncio.run(run_demo(seconds=args.seconds))


def _run(args: argparse.Namespace, cfg: Path) -> int:
    from agent.api.server import ApiServer
    from agent.api.token import TokenStore
    from agent.control import Control
    from agent.core.redact import REDACTOR
    from agent.platform.autostart import for_this_machine
    from agent.platform.memory import tune_allocator
    from agent.platform.single_instance import AlreadyRunning, InstanceLock
    from agent.store.profiles import ProfileStore
    from agent.store.secrets import SecretStore, choose_store, key_source
    from agent.tray.app import load_backend
    from agent.tray.run import TrayRunner

    setup_logging(log_dir(args.config_dir), verbose=args.verbose)
    if tuned := tune_allocator():
        log.debug("allocator: %s", tuned)
    store = ProfileStore(cfg)
    settings = store.load_settings()
    if args.port is not None:
        settings.api_port = args.port
    if args.bind is not None:
        import ipaddress

        try:
            ipaddress.ip_address(args.bind)
        except ValueError:
            raise CascadeError(
                f"'{args.bind}' is not an IP address",
                subject="--bind",
                hint="Use 127.0.0.1 (this machine only), or an address of this machine",
            ) from None
        settings.api_bind = args.bind
    lock = InstanceLock(cfg)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        return _already_running(cfg, exc)
    try:
        profile = store.load_active()
        for warning in store.warnings:
            log.warning("%s", warning)
        passphrase = _vault_passphrase(cfg)
        opened: list[SecretStore] = []

        def secrets() -> SecretStore:
            if not opened:
                opened.append(choose_store(cfg, passphrase=passphrase))
            return opened[0]

        def keys_for(name: str) -> Callable[[Target], str | None]:
            return key_source(cfg, name, passphrase=passphrase)

        tokens = TokenStore(cfg)
        token = tokens.get_or_create()
        REDACTOR.add(token)
        agent = Agent(cfg, settings=settings, profile=profile, keys=keys_for(profile.name))
        control = Control(agent, store, secrets=secrets, keys_for=keys_for)
        server = ApiServer(
            control,
            token=token,
            port=settings.api_port,
            bind=settings.api_bind,
            rotate_token=tokens.rotate,
        )
        backend, why = (None, "--headless") if args.headless else load_backend()
        if backend is None:
            if not args.headless:
                log.info("running without a tray icon: %s", why)
            asyncio.run(_serve_headless(agent, server, on_listening=lock.set_port))
            return 0  # the lock is released below
        runner = TrayRunner(
            backend,
            control,
            token=token,
            logs=log_dir(args.config_dir),
            notifications=settings.notifications,
            dashboard_url=f"{server.url}/",
            dashboard_link=server.dashboard.login_link,
            autostart=for_this_machine(cfg),
        )

        async def serve(stop: asyncio.Event, after: Callable[[], Awaitable[None]]) -> None:
            await _serve(agent, server, stop, on_listening=lock.set_port, after_start=after)

        runner.run(serve)
    finally:
        lock.release()
    return 0


def _already_running(cfg: Path, exc: CascadeError) -> int:
    """A second ``cascade run``: ask the running agent to show itself, say so, and exit."""
    from agent.api.client import ApiClient

    try:
        client = ApiClient.for_config(cfg)
        client.post("/api/v1/show")
    except CascadeError:
        raise exc from None  # it cannot be reached: say it is running, as the lock knows
    print(f"{exc.what}; it was asked to show itself (API {client.address}).")
    return 0


def _vault_passphrase(cfg: Path) -> Callable[[], str] | None:
    """Ask once, at start, for the key vault's passphrase when it is needed and not set."""
    import getpass
    import os

    from agent.store.secrets import VAULT_PASSPHRASE_ENV
    from agent.store.vault import VAULT_FILENAME

    if not (cfg / VAULT_FILENAME).exists() or os.environ.get(VAULT_PASSPHRASE_ENV):
        return None
    if sys.stdin is None or not sys.stdin.isatty():
        return None  # the error at target start says to set CASCADE_VAULT_PASSPHRASE
    secret = getpass.getpass("Passphrase of Cascade's key vault: ")
    return lambda: secret


async def _serve(
    agent: Agent,
    server: ApiServer,
    stop: asyncio.Event,
    *,
    on_listening: Callable[[int], None],
    after_start: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run the API and the agent until ``stop`` is set, then stop every child cleanly."""
    await server.start()  # first, so /healthz answers while FFmpeg is being probed
    on_listening(server.port)
    try:
        await agent.start()
        if after_start is not None:
            await after_start()
        log.info(
            "Cascade %s running (config: %s, API: %s)", __version__, agent.config_dir, server.url
        )
        await stop.wait()
    finally:
        log.info("stopping")
        await server.stop()
        await agent.stop()


async def _serve_headless(
    agent: Agent, server: ApiServer, *, on_listening: Callable[[int], None]
) -> None:
    """:func:`_serve` until SIGINT or SIGTERM (or SIGHUP, a closed terminal)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    names = ["SIGINT", "SIGTERM"] + ([] if sys.platform == "win32" else ["SIGHUP"])
    for name in names:
        sig = getattr(signal, name)
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    await _serve(agent, server, stop, on_listening=on_listening)
