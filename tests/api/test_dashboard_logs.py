"""The Logs view's data: a bounded ring buffer of FFmpeg's and the agent's own lines, every
line redacted, filterable by source, served by ``GET /api/v1/logs`` and followed live on the
WebSocket.

:class:`Logbook` is unit-tested on its own; the route is then checked against a real agent,
whose bus and loggers feed it as they do in ``cascade run``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import pytest

from agent.core.events import EventBus, GroupStateChanged, LogLine
from agent.core.logbook import CAPACITY, MAX_LINE, Logbook, matches
from agent.core.redact import MASK, REDACTOR, Redactor
from tests.api.conftest import Api

V1 = "/api/v1"
SECRET = "live_dash-SECRET-4f1e9a7c"


def line(source: str, text: str, level: str = "ffmpeg", at: float = 1_700_000_000.0) -> LogLine:
    return LogLine(source=source, line=text, level=level, at=at)


def texts(book: Logbook, source: str | None = None, limit: int = CAPACITY) -> list[str]:
    return [entry.line for entry in book.lines(source, limit)]


@pytest.fixture(autouse=True)
def _secret_known() -> None:
    REDACTOR.add(SECRET)  # as the store does when a key is set or resolved


async def settle() -> None:
    """Let the loop run the log records that other code handed to it."""
    for _ in range(5):
        await asyncio.sleep(0)


# -- the ring buffer ------------------------------------------------------------------------


class TestLogbook:
    def test_it_keeps_only_the_newest_lines_oldest_first(self) -> None:
        book = Logbook(capacity=5)
        for n in range(8):
            book.on_event(line("ingest", f"line {n}"))
        assert texts(book) == [f"line {n}" for n in range(3, 8)]

    def test_a_long_line_is_cut_so_memory_stays_bounded(self) -> None:
        book = Logbook()
        book.on_event(line("ingest", "x" * (MAX_LINE * 3)))
        assert len(texts(book)[0]) == MAX_LINE

    def test_limit_gives_the_last_lines(self) -> None:
        book = Logbook()
        for n in range(10):
            book.on_event(line("ingest", f"line {n}"))
        assert texts(book, limit=3) == ["line 7", "line 8", "line 9"]

    def test_other_events_are_not_kept(self) -> None:
        bus = EventBus()
        book = Logbook()
        bus.add_listener(book.on_event)
        bus.publish(GroupStateChanged(group="main", state="live"))
        bus.publish(line("ingest", "kept"))
        assert texts(book) == ["kept"]

    @pytest.mark.parametrize(
        ("wanted", "expected"),
        [
            pytest.param("target:yt", ["to yt"], id="exact"),
            pytest.param("target:", ["to yt", "to yt2"], id="prefix"),
            pytest.param("group:main", ["encoder main"], id="exact-not-prefix"),
            pytest.param("group:", ["encoder main", "encoder main2"], id="every-group"),
            pytest.param(
                None, ["in", "to yt", "to yt2", "encoder main", "encoder main2"], id="all"
            ),
            pytest.param("nothing", [], id="unknown"),
        ],
    )
    def test_lines_are_filtered_by_source(self, wanted: str | None, expected: list[str]) -> None:
        book = Logbook()
        for source, text in [
            ("ingest", "in"),
            ("target:yt", "to yt"),
            ("target:yt2", "to yt2"),
            ("encoder:main", "encoder main"),
            ("encoder:main2", "encoder main2"),
        ]:
            book.on_event(line(source, text))
        assert texts(book, wanted) == expected

    def test_an_encoders_lines_are_its_groups_and_sources_are_listed_sorted(self) -> None:
        book = Logbook()
        for source in ("target:yt", "encoder:hd", "ingest", "target:yt"):
            book.on_event(line(source, "x"))
        assert book.sources() == ["group:hd", "ingest", "target:yt"]

    @pytest.mark.parametrize(
        ("text", "level"),
        [
            ("Connection to tcp://127.0.0.1:1 failed: Connection refused", "error"),
            ("Error opening output rtmp://x/live", "error"),
            ("Invalid data found when processing input", "error"),
            ("Past duration 0.999 too large", "warning"),
            ("Non-monotonic DTS; previous: 10, current: 9", "warning"),
        ],
    )
    def test_ffmpeg_lines_become_warnings_or_errors(self, text: str, level: str) -> None:
        book = Logbook()
        book.on_event(line("target:yt", text))
        assert book.lines()[0].level == level

    def test_known_levels_are_kept(self) -> None:
        book = Logbook()
        book.on_event(line("agent", "note", level="info"))
        assert book.lines()[0].level == "info"

    def test_a_secret_is_masked_when_kept(self) -> None:
        redactor = Redactor([SECRET])
        book = Logbook(redactor=redactor)
        book.on_event(line("target:yt", f"rtmp://a.example/live2/{SECRET} failed"))
        assert texts(book) == [f"rtmp://a.example/live2/{MASK} failed"]

    def test_a_secret_registered_later_is_masked_when_read(self) -> None:
        redactor = Redactor()
        book = Logbook(redactor=redactor)
        book.on_event(line("target:yt", f"key {SECRET}"))
        redactor.add(SECRET)
        shown = book.to_json(book.lines()[0])
        assert shown["line"] == f"key {MASK}"

    def test_an_entry_is_shown_with_an_iso_time(self) -> None:
        book = Logbook()
        book.on_event(line("ingest", "x", at=1_700_000_000.25))
        shown = book.to_json(book.lines()[0])
        assert set(shown) == {"time", "level", "source", "line"}
        assert datetime.fromisoformat(shown["time"]).timestamp() == 1_700_000_000.25


class TestMatches:
    def test_no_filter_matches_everything(self) -> None:
        assert matches("anything", None) and matches("anything", "")


class TestCapture:
    async def test_the_agents_records_become_log_lines_on_the_bus(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="agent")
        bus = EventBus()
        book = Logbook()
        bus.add_listener(book.on_event)
        with bus.subscribe(["log"]) as sub:
            stop = book.capture(bus)
            try:
                logging.getLogger("agent.core.relay").info("relay note with %s", SECRET)
                logging.getLogger("agent.core.relay").debug("debug is left out")
                logging.getLogger("elsewhere").warning("not the agent's")
                await settle()
            finally:
                stop()
            event = sub.queue.get_nowait()
            assert sub.queue.empty()
        assert isinstance(event, LogLine)
        assert event.source == "agent" and event.level == "info"
        assert event.line == f"relay note with {MASK}"
        assert [e.line for e in book.lines()] == [event.line]

    async def test_an_exception_is_kept_as_its_type_and_message(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="agent")
        bus = EventBus()
        book = Logbook()
        bus.add_listener(book.on_event)
        stop = book.capture(bus)
        try:
            try:
                raise ValueError("the disk said no")
            except ValueError:
                logging.getLogger("agent.store").exception("saving failed")
            await settle()
        finally:
            stop()
        entry = book.lines()[0]
        assert entry.level == "error"
        assert entry.line == "saving failed: ValueError: the disk said no"

    async def test_the_agents_lines_about_one_child_are_filed_under_it(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="agent")
        bus = EventBus()
        book = Logbook()
        bus.add_listener(book.on_event)
        stop = book.capture(bus)
        try:
            sup = logging.getLogger("agent.core.supervisor")
            sup.info("target:yt: STARTING -> RUNNING (running)")
            sup.info("encoder:hd: RUNNING -> BACKOFF (exit 1)")
            sup.info("ingest: STARTING -> RUNNING (running)")
            sup.info("target: not a child's name")
            await settle()
        finally:
            stop()
        assert [(e.source, e.line[:10]) for e in book.lines()] == [
            ("target:yt", "target:yt:"),
            ("group:hd", "encoder:hd"),
            ("ingest", "ingest: ST"),
            ("agent", "target: no"),
        ]
        assert [e.line for e in book.lines("target:yt")] == [
            "target:yt: STARTING -> RUNNING (running)"
        ]

    async def test_stopping_the_capture_stops_it(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="agent")
        bus = EventBus()
        book = Logbook()
        bus.add_listener(book.on_event)
        book.capture(bus)()
        logging.getLogger("agent.x").warning("after stop")
        await settle()
        assert book.lines() == []


# -- GET /api/v1/logs against a real agent --------------------------------------------------


class TestLogsRoute:
    async def test_ffmpeg_and_agent_lines_come_back_redacted_oldest_first(self, api: Api) -> None:
        api.agent.bus.publish(line("target:site", f"rtmp://h/live/{SECRET}: Connection refused"))
        logging.getLogger("agent.core.relay").warning("key %s was rejected", SECRET)
        await settle()
        body = await api.ok("GET", f"{V1}/logs")
        shown = body["lines"][-2:]
        assert [(x["source"], x["level"]) for x in shown] == [
            ("target:site", "error"),
            ("agent", "warning"),
        ]
        assert shown[0]["line"] == f"rtmp://h/live/{MASK}: Connection refused"
        assert shown[1]["line"] == f"key {MASK} was rejected"
        assert SECRET not in str(body)
        for item in body["lines"]:
            datetime.fromisoformat(item["time"])

    async def test_the_source_filter_and_the_sources_seen(self, api: Api) -> None:
        for source in ("target:site", "target:yt", "encoder:hd", "ingest"):
            api.agent.bus.publish(line(source, f"from {source}"))
        targets = await api.ok("GET", f"{V1}/logs?source=target:")
        assert [x["line"] for x in targets["lines"]] == ["from target:site", "from target:yt"]
        group = await api.ok("GET", f"{V1}/logs?source=group:hd")
        assert [x["line"] for x in group["lines"]] == ["from encoder:hd"]
        assert {"group:hd", "ingest", "target:site", "target:yt"} <= set(targets["sources"])
        assert targets["sources"] == sorted(targets["sources"])

    async def test_the_buffer_is_bounded_and_limit_picks_the_last(self, api: Api) -> None:
        for n in range(CAPACITY + 100):
            api.agent.bus.publish(line("ingest", f"line {n}"))
        every = await api.ok("GET", f"{V1}/logs?limit={CAPACITY}&source=ingest")
        assert len(every["lines"]) == CAPACITY
        assert every["lines"][0]["line"] == "line 100"
        assert every["lines"][-1]["line"] == f"line {CAPACITY + 99}"
        three = await api.ok("GET", f"{V1}/logs?limit=3&source=ingest")
        assert [x["line"] for x in three["lines"]] == [f"line {CAPACITY + n}" for n in (97, 98, 99)]
        default = await api.ok("GET", f"{V1}/logs?source=ingest")
        assert len(default["lines"]) == 500

    @pytest.mark.parametrize("limit", ["0", "-1", str(CAPACITY + 1), "many", "1.5"])
    async def test_a_bad_limit_is_a_422_naming_it(self, api: Api, limit: str) -> None:
        resp = await api.get(f"{V1}/logs?limit={limit}")
        body = await resp.json()
        assert resp.status == 422, body
        assert body["error"]["field"] == "limit"

    async def test_an_overlong_source_is_a_422_naming_it(self, api: Api) -> None:
        resp = await api.get(f"{V1}/logs?source={'x' * 300}")
        assert resp.status == 422
        assert (await resp.json())["error"]["field"] == "source"

    async def test_the_logs_need_the_token(self, api: Api) -> None:
        resp = await api.client.get(f"{V1}/logs")
        assert resp.status == 401

    async def test_new_lines_arrive_on_the_websocket_in_the_same_shape(self, api: Api) -> None:
        ws = await api.client.ws_connect(f"{V1}/events?kinds=log", headers=api.auth())
        try:
            hello = await ws.receive_json(timeout=5)
            assert hello["type"] == "hello"
            api.agent.bus.publish(line("encoder:hd", f"{SECRET}: Error while opening encoder"))
            event: dict[str, Any] = await ws.receive_json(timeout=5)
        finally:
            await ws.close()
        assert event["type"] == "log"
        assert event["source"] == "group:hd"
        assert event["level"] == "error"
        assert event["line"] == f"{MASK}: Error while opening encoder"
        assert datetime.fromisoformat(event["time"]).timestamp() == pytest.approx(event["at"])
        logged = await api.ok("GET", f"{V1}/logs?source=group:hd")
        assert {k: v for k, v in event.items() if k not in ("type", "at")} == logged["lines"][-1]
