"""The supervisor: one child process, one explicit state machine.

A :class:`Supervisor` starts a child (an FFmpeg, usually), watches it and restarts it:

- the state is written in exactly one method, :meth:`Supervisor._change`, which checks the edge
  against :mod:`agent.core.states` and publishes a :class:`ProcessStateChanged` event;
- a child that ends is restarted after an exponential, jittered delay (:mod:`agent.core.backoff`)
  that resets once a run was stable; a start that cannot work (the binary is missing, the
  arguments are wrong, too many failed starts in a row) goes to FATAL with its reason;
- a child that is alive but whose progress counters (stdout bytes, FFmpeg ``-progress`` blocks)
  stop moving for ``stall_timeout`` seconds is treated as failed (:mod:`agent.core.stall`);
- stopping is staged: ``q`` on stdin (or EOF when stdin carries data, or SIGINT when there is
  no stdin), a deadline, then a kill, and the child is always reaped;
- stdout and stderr are always drained; the last stderr lines are kept, redacted, for the error
  a person sees.

Spawning and signalling go through a :class:`~agent.core.launcher.Launcher`, so tests can
record what the supervisor decided without real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from agent.core.backoff import BackoffPolicy
from agent.core.events import EventBus, LogLine, ProcessStateChanged
from agent.core.launcher import AsyncioLauncher, ChildProcess, Launcher
from agent.core.redact import REDACTOR, Redactor
from agent.core.stall import StallDetector
from agent.core.states import EDGES, ProcessState, check_edge
from agent.errors import CascadeError
from agent.media.exit_reasons import Failure, classify_exit
from agent.media.progress import Progress, ProgressParser, advanced

log = logging.getLogger(__name__)

S = ProcessState


class StdinMode(enum.Enum):
    """What the child's stdin is for, which decides how it is asked to stop."""

    NONE = "none"  # /dev/null; stop politely with SIGINT
    CONTROL = "control"  # a pipe for FFmpeg's interactive keys; stop with "q"
    DATA = "data"  # the media stream itself; stop by closing it (EOF)


class RestartPolicy(enum.Enum):
    """Whether a child that ended by itself is started again."""

    ALWAYS = "always"  # even after a clean exit (a listener that serves one client at a time)
    ON_FAILURE = "on-failure"  # only after a non-zero exit, a signal or a stall
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class SupervisorConfig:
    """Timings and policies of one supervisor; every one is configurable."""

    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    start_window: float = 1.0  # alive this long (or first progress) -> RUNNING
    stall_timeout: float | None = 15.0  # no progress this long -> failed
    stall_needs_first_progress: bool = False  # a listener waiting for a publisher is not stalled
    stop_timeout: float = 5.0  # polite stop -> kill after this long
    max_start_failures: int | None = 10  # consecutive failed starts before FATAL; None = never
    restart: RestartPolicy = RestartPolicy.ALWAYS
    stderr_tail: int = 40  # stderr lines kept for the error a person sees


StdinFeeder = Callable[[asyncio.StreamWriter], Awaitable[None]]
StdoutSink = Callable[[bytes], Awaitable[None]]
ProgressSink = Callable[[Progress], None]
Classifier = Callable[[int | None, Sequence[str]], Failure]


@dataclass(slots=True)
class ChildSpec:
    """What to run and how to talk to it.

    ``argv`` may be a callable, resolved at every start (a stream key read from the environment
    at start time); a :class:`CascadeError` raised there sends the supervisor to FATAL.
    """

    name: str
    argv: Sequence[str] | Callable[[], Sequence[str]]
    stdin: StdinMode = StdinMode.CONTROL
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    feed_stdin: StdinFeeder | None = None  # with StdinMode.DATA: writes the media
    on_stdout: StdoutSink | None = None  # receives stdout chunks; otherwise discarded
    on_progress: ProgressSink | None = None  # receives parsed -progress blocks
    on_stderr: Callable[[str], None] | None = None  # every (redacted) log line of the child
    on_exit: Callable[[int | None], None] | None = None  # the child was reaped, pipes drained
    # Asked when a child ends by itself: False ends the supervisor in EXITED instead of
    # restarting (an output whose input session is over has nothing left to send).
    restart_if: Callable[[], bool] | None = None
    classify: Classifier = classify_exit

    def resolve_argv(self) -> list[str]:
        argv = self.argv() if callable(self.argv) else self.argv
        return list(argv)


@dataclass(slots=True)
class _Run:
    """What one child's life ended with."""

    returncode: int | None
    failure: Failure | None = None  # set when the supervisor judged the child failed
    stopped: bool = False  # ended because a stop was requested


class Supervisor:
    """Runs one child under an explicit state machine. Create, then ``await start()``."""

    def __init__(
        self,
        spec: ChildSpec,
        *,
        bus: EventBus,
        config: SupervisorConfig | None = None,
        launcher: Launcher | None = None,
        redactor: Redactor = REDACTOR,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.spec = spec
        self.config = config or SupervisorConfig()
        self._bus = bus
        self._launcher = launcher or AsyncioLauncher()
        self._redactor = redactor
        self._rand = rand

        self._state = S.STOPPED
        self.reason = ""  # why the last state was entered (the error a person sees)
        self.pid: int | None = None
        self.attempt = 0  # consecutive failures since the last stable run
        self.start_failures = 0  # consecutive failures before reaching RUNNING
        self.restarts = 0  # children started after the first, over the supervisor's life
        self.started_at: float | None = None  # loop time the current child was spawned
        self.retry_at: float | None = None  # loop time of the next start, in BACKOFF
        self.last_progress: Progress | None = None
        self.stdout_bytes = 0
        self.last_exit_code: int | None = None  # negative: killed by that signal (POSIX)

        self._tail: deque[str] = deque(maxlen=self.config.stderr_tail)
        self._stall = StallDetector(self.config.stall_timeout)
        self._stall_armed = False
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._fail_reason: str | None = None
        self._waiters: list[tuple[frozenset[ProcessState], asyncio.Future[ProcessState]]] = []

    # -- public surface ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def state(self) -> ProcessState:
        return self._state

    def stderr_tail(self) -> list[str]:
        """The last (redacted) stderr lines of the current or last child."""
        return list(self._tail)

    async def start(self) -> None:
        """Start the child unless it is already running or about to."""
        if self._state.is_active or self._state is S.STOPPING:
            return
        self.attempt = 0
        self.start_failures = 0
        self._stop.clear()
        self._change(S.STARTING, "start requested")  # STOPPED|EXITED|FATAL -> STARTING
        self._task = asyncio.create_task(self._run(), name=f"supervise:{self.name}")

    async def stop(self) -> None:
        """Stop the child gracefully (escalating to a kill) and wait until it is reaped."""
        self.request_stop()
        if self._task is not None:
            await asyncio.shield(self._task)

    def request_stop(self) -> None:
        """Ask for a stop without waiting for it (callbacks that cannot await use this)."""
        if self._state in (S.EXITED, S.FATAL):
            self._change(S.STOPPED, "stop requested")  # EXITED|FATAL -> STOPPED
            return
        self._stop.set()
        self._wake.set()

    def fail(self, reason: str) -> None:
        """Treat the running child as failed (it is killed and restarted after a delay).

        Used by whoever sees trouble the child itself cannot report, such as the hub cutting
        off a subscriber that fell too far behind.
        """
        if self._state in (S.STARTING, S.RUNNING):
            self._fail_reason = reason
            self._wake.set()

    async def wait_for(self, *states: ProcessState, timeout: float | None = None) -> ProcessState:
        """Wait until the supervisor enters one of ``states`` (returns at once if it is in one)."""
        wanted = frozenset(states)
        if self._state in wanted:
            return self._state
        fut: asyncio.Future[ProcessState] = asyncio.get_running_loop().create_future()
        entry = (wanted, fut)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    # -- the one place the state is written -------------------------------------------------

    def _change(
        self, new: ProcessState, reason: str = "", *, retry_in: float | None = None
    ) -> None:
        old = self._state
        check_edge(self.name, old, new)
        self._state = new
        self.reason = reason
        log.info("%s: %s -> %s%s", self.name, old.name, new.name, f" ({reason})" if reason else "")
        self._bus.publish(
            ProcessStateChanged(
                name=self.name,
                old=old.value,
                new=new.value,
                reason=reason,
                pid=self.pid,
                attempt=self.attempt,
                retry_in=retry_in,
            )
        )
        for wanted, fut in list(self._waiters):
            if new in wanted and not fut.done():
                fut.set_result(new)

    # -- the run loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:  # state is STARTING at the top of every turn
                try:
                    argv = self.spec.resolve_argv()
                except CascadeError as exc:
                    self._change(S.FATAL, self._redactor.redact(str(exc)))  # STARTING -> FATAL
                    return
                if self._stop.is_set():
                    self._change(S.STOPPING, "stop requested")  # STARTING -> STOPPING
                    self._change(S.STOPPED, "stopped")  # STOPPING -> STOPPED
                    return
                run = await self._spawn_and_watch(argv, loop)
                if run is None:
                    return  # could not spawn: already FATAL
                if run.stopped:
                    self._change(S.STOPPED, "stopped")  # STOPPING -> STOPPED
                    return
                if not await self._after_exit(run, loop):
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not leave a child unsupervised and silent
            log.exception("%s: supervisor crashed", self.name)
            if S.FATAL in EDGES[self._state]:
                self._change(S.FATAL, f"internal error: {exc}")
            raise

    async def _spawn_and_watch(
        self, argv: list[str], loop: asyncio.AbstractEventLoop
    ) -> _Run | None:
        log.info("%s: starting %r", self.name, self._redactor.redact_argv(argv))
        self._tail.clear()
        self._fail_reason = None
        try:
            proc = await self._launcher.spawn(
                argv,
                stdin=self.spec.stdin is not StdinMode.NONE,
                env=self.spec.env,
                cwd=self.spec.cwd,
            )
        except OSError as exc:
            what = exc.strerror or str(exc)
            # STARTING -> FATAL: the binary is missing or not runnable; retrying cannot help.
            self._change(S.FATAL, self._redactor.redact(f"could not start {argv[0]}: {what}"))
            return None
        except CascadeError as exc:  # the child could not be contained; it was killed
            self._change(S.FATAL, self._redactor.redact(str(exc)))  # STARTING -> FATAL
            return None
        self.pid = proc.pid
        now = loop.time()
        self.started_at = now
        self._stall.reset(now)
        self._stall_armed = not self.config.stall_needs_first_progress
        self.last_progress = None
        try:
            run = await self._watch(proc, loop)
            self.last_exit_code = run.returncode
        finally:
            self._launcher.reaped(proc)
            self.pid = None
        if self.spec.on_exit is not None:
            self.spec.on_exit(run.returncode)
        return run

    async def _watch(self, proc: ChildProcess, loop: asyncio.AbstractEventLoop) -> _Run:
        """Watch a live child until it ends, a stop is asked, or it is judged failed."""
        assert self.started_at is not None
        io = [
            asyncio.create_task(self._drain_stderr(proc, loop)),
            asyncio.create_task(self._drain_stdout(proc, loop)),
        ]
        feeder: asyncio.Task[None] | None = None
        if self.spec.stdin is StdinMode.DATA and self.spec.feed_stdin and proc.stdin:
            feeder = asyncio.create_task(self._feed(proc.stdin))
        exited = asyncio.create_task(proc.wait())
        failure: Failure | None = None
        stopped = False
        try:
            while not exited.done():
                self._wake.clear()
                now = loop.time()
                if self._stop.is_set():
                    stopped = True
                    break
                if self._fail_reason is not None:
                    failure = Failure(self._fail_reason)
                    break
                if self._state is S.STARTING and (
                    now >= self.started_at + self.config.start_window
                    or self.last_progress is not None
                ):
                    self._change(S.RUNNING, "running")  # STARTING -> RUNNING
                if self._stall_armed and self._stall.stalled(now):
                    failure = Failure(f"stalled: no progress for {self.config.stall_timeout:g} s")
                    break
                wake = asyncio.create_task(self._wake.wait())
                await asyncio.wait(
                    {exited, wake},
                    timeout=self._next_deadline(now),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                wake.cancel()
            if stopped:
                # STARTING|RUNNING -> STOPPING
                self._change(S.STOPPING, "stop requested")
                await self._terminate(proc, feeder, exited, polite=True)
            elif failure is not None:
                await self._terminate(proc, feeder, exited, polite=False)
            returncode = await exited
        finally:
            if feeder is not None:
                feeder.cancel()
            if not exited.done():  # cancelled from outside: never leave the child behind
                self._launcher.kill(proc)
                await asyncio.shield(exited)
            await _finish(io, timeout=2.0)
        return _Run(returncode=returncode, failure=failure, stopped=stopped)

    def _next_deadline(self, now: float) -> float | None:
        deadlines: list[float] = []
        if self._state is S.STARTING and self.started_at is not None:
            deadlines.append(self.started_at + self.config.start_window)
        stall = self._stall.deadline() if self._stall_armed else None
        if stall is not None:
            deadlines.append(stall)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - now)

    async def _after_exit(self, run: _Run, loop: asyncio.AbstractEventLoop) -> bool:
        """Decide what follows a child's end. True: start again (state is STARTING)."""
        assert self.started_at is not None
        cfg = self.config
        now = loop.time()
        ran_for = now - self.started_at
        was_running = self._state is S.RUNNING
        failure = run.failure or self.spec.classify(run.returncode, list(self._tail))
        clean = run.failure is None and run.returncode == 0

        if self.spec.restart_if is not None and not self.spec.restart_if():
            # RUNNING|STARTING -> EXITED: nothing to restart for.
            self._change(S.EXITED, "finished" if clean else failure.reason)
            return False
        if cfg.restart is RestartPolicy.NEVER or (
            clean and cfg.restart is RestartPolicy.ON_FAILURE
        ):
            # RUNNING|STARTING -> EXITED
            self._change(S.EXITED, "finished" if clean else failure.reason)
            return False
        if failure.permanent:
            self._change(S.FATAL, failure.reason)  # STARTING|RUNNING -> FATAL
            return False

        if was_running and clean:
            # A clean end after a good run is a normal cycle (a listener that served its
            # publisher, an output whose input ended): go again at once.
            self.start_failures = 0
            self.attempt = 0
            self._change(S.BACKOFF, "finished", retry_in=0.0)  # RUNNING -> BACKOFF
            self.restarts += 1
            self._change(S.STARTING, "restart after a clean exit")  # BACKOFF -> STARTING
            return True
        if was_running:
            self.start_failures = 0
            if cfg.backoff.is_stable(ran_for):
                self.attempt = 0
        else:
            self.start_failures += 1
        self.attempt += 1
        if (
            not was_running
            and cfg.max_start_failures is not None
            and self.start_failures >= cfg.max_start_failures
        ):
            # STARTING -> FATAL: it never got going; more retries would only loop.
            self._change(
                S.FATAL,
                f"{failure.reason} (gave up after {self.start_failures} failed starts)",
            )
            return False

        delay = cfg.backoff.delay(self.attempt, self._rand)
        self.retry_at = now + delay
        self._change(S.BACKOFF, failure.reason, retry_in=delay)  # STARTING|RUNNING -> BACKOFF
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=delay)
        self.retry_at = None
        if self._stop.is_set():
            self._change(S.STOPPED, "stopped")  # BACKOFF -> STOPPED
            return False
        self.restarts += 1
        self._change(S.STARTING, f"retry {self.attempt}")  # BACKOFF -> STARTING
        return True

    # -- stopping ---------------------------------------------------------------------------

    async def _terminate(
        self,
        proc: ChildProcess,
        feeder: asyncio.Task[None] | None,
        exited: asyncio.Task[int],
        *,
        polite: bool,
    ) -> None:
        """Polite request, a deadline, then a kill; returns once the child is reaped."""
        if polite:
            self._ask_to_stop(proc, feeder)
            done, _ = await asyncio.wait({exited}, timeout=self.config.stop_timeout)
            if done:
                return
            log.warning(
                "%s: did not stop within %.1f s, killing it", self.name, self.config.stop_timeout
            )
        self._launcher.kill(proc)
        await asyncio.shield(exited)

    def _ask_to_stop(self, proc: ChildProcess, feeder: asyncio.Task[None] | None) -> None:
        mode = self.spec.stdin
        if mode is StdinMode.NONE or proc.stdin is None:
            self._launcher.interrupt(proc)
            return
        if feeder is not None:
            feeder.cancel()
        try:
            if mode is StdinMode.CONTROL:
                proc.stdin.write(b"q\n")
            proc.stdin.close()  # EOF ends an FFmpeg reading its input from stdin
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            pass

    # -- the child's pipes ------------------------------------------------------------------

    async def _drain_stderr(self, proc: ChildProcess, loop: asyncio.AbstractEventLoop) -> None:
        if proc.stderr is None:
            return
        parser = ProgressParser()
        while True:
            try:
                raw = await proc.stderr.readline()
            except ValueError:  # a line longer than the stream limit: skip what is buffered
                continue
            if not raw:
                return
            for piece in raw.decode("utf-8", "replace").replace("\r", "\n").splitlines():
                self._on_stderr_line(piece, parser, loop.time())

    def _on_stderr_line(self, line: str, parser: ProgressParser, now: float) -> None:
        if ProgressParser.is_progress_line(line):
            progress = parser.feed_line(line, now)
            if progress is not None:
                self._on_progress(progress, now)
            return
        if not line.strip():
            return
        line = self._redactor.redact(line)
        self._tail.append(line)
        log.debug("%s: %s", self.name, line)
        self._bus.publish(LogLine(source=self.name, line=line, level="ffmpeg"))
        if self.spec.on_stderr is not None:
            self.spec.on_stderr(line)

    def _on_progress(self, progress: Progress, now: float) -> None:
        if advanced(self.last_progress, progress):
            self._stall.progressed(now)
            self._stall_armed = self.config.stall_timeout is not None
        first = self.last_progress is None
        self.last_progress = progress
        if first and self._state is S.STARTING:
            self._wake.set()
        if self.spec.on_progress is not None:
            self.spec.on_progress(progress)

    async def _drain_stdout(self, proc: ChildProcess, loop: asyncio.AbstractEventLoop) -> None:
        if proc.stdout is None:
            return
        sink = self.spec.on_stdout
        while True:
            chunk = await proc.stdout.read(65536)
            if not chunk:
                return
            self.stdout_bytes += len(chunk)
            self._stall.progressed(loop.time())
            self._stall_armed = self.config.stall_timeout is not None
            if sink is None:
                continue
            try:
                await sink(chunk)
            except CascadeError as exc:
                # The output is unusable (not FLV, say): the child failed, for that reason.
                # Keep draining, so it never blocks on a full pipe while it is being stopped.
                log.error("%s: %s", self.name, exc)
                self.fail(self._redactor.redact(str(exc)))
                sink = None

    async def _feed(self, stdin: asyncio.StreamWriter) -> None:
        assert self.spec.feed_stdin is not None
        # The child going away breaks the pipe; its exit is handled by the watcher.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await self.spec.feed_stdin(stdin)


async def _finish(tasks: Iterable[asyncio.Task[None]], *, timeout: float) -> None:
    """Let drain tasks reach EOF; cancel them if a grandchild keeps a pipe open."""
    pending = [t for t in tasks if not t.done()]
    if pending:
        _, still = await asyncio.wait(pending, timeout=timeout)
        for t in still:
            t.cancel()
        await asyncio.gather(*still, return_exceptions=True)
    for t in tasks:
        if t.done() and not t.cancelled() and t.exception() is not None:
            log.error("pipe reader failed", exc_info=t.exception())


__all__ = [
    "ChildSpec",
    "RestartPolicy",
    "StdinMode",
    "Supervisor",
    "SupervisorConfig",
]
