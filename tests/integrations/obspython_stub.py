"""A stand-in for OBS's ``obspython`` module that records what a script asks of OBS.

:class:`FakeObs` plays OBS for one script. Its ``obs_*`` / ``timer_*`` / ``script_log``
methods and ``OBS_*`` / ``LOG_*`` constants are what the script sees as ``obspython``
(:meth:`FakeObs.module` builds that module; :meth:`FakeObs.load` installs it as
``sys.modules["obspython"]`` and imports the script the way OBS does). The other methods are
OBS's side, for a test:

- :meth:`load` / :meth:`unload` / :meth:`save` call the script's entry points in OBS's order
  (``script_defaults``, ``script_description``, ``script_load``, ``script_update``);
- :meth:`properties` builds the properties view (``script_properties``); :meth:`click` presses
  a button, :meth:`set` changes a setting as a person would (the property's modified
  callback, then ``script_update``);
- :meth:`fire` sends a frontend event to the registered callbacks, :meth:`tick` runs the timers
  that are due, like OBS's frame tick; :meth:`run_until` ticks until a condition holds.

What OBS itself enforces is enforced here too: frontend, timer and button callbacks must be
plain functions (OBS silently ignores anything else; here it is recorded in ``ignored``).
Every call OBS makes into the script once it is imported is timed (``durations``): its wall
time less what the machine, not the script, added to it, so that a budget holds on a busy
test machine and still catches any wait. Left out are the time the thread was ready to run
but had no CPU (Linux's per-thread ``schedstat``; elsewhere nothing is left out) and the
time Python's garbage collector spent on the test runner's own large heap (OBS's
interpreter holds a few scripts, not pytest, aiohttp and the agent). What remains is the
script's own work and every wait in it: a lock, a queue, a socket, the GIL held by another
thread. Every ``obspython`` call made from another thread than the one playing OBS is
recorded (``foreign_calls``); every ``obs_data`` the script creates must be released
(:meth:`leaked_data`). The script log gets what OBS's own ``sys.stdout`` replacement gives
it: what the script prints while OBS calls it, line by line (:class:`ScriptStdout`).
"""

from __future__ import annotations

import gc
import importlib.util
import itertools
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_counter = itertools.count()


class _GcClock:
    """Seconds spent in the garbage collector so far (in any thread of this process)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._start


_GC = _GcClock()
gc.callbacks.append(_GC)


def _runqueue_s() -> float:
    """Seconds this thread has spent ready to run but waiting for a CPU (0 where unknown)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as stats:
            return int(stats.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


@dataclass(eq=False)
class ObsData:
    """An ``obs_data_t``: user values over defaults, with a reference count."""

    values: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    refs: int = 1
    owner: str = "obs"  # "obs" (OBS releases it) or "script" (the script must)

    def get(self, name: str, fallback: Any) -> Any:
        return self.values.get(name, self.defaults.get(name, fallback))


@dataclass(eq=False)
class Property:
    """One ``obs_property_t`` as the properties view would draw it."""

    name: str
    kind: str  # "bool", "text", "list", "button", "group"
    description: str
    text_type: int | None = None
    info_type: int | None = None
    long_description: str = ""
    callback: Callable[..., Any] | None = None
    modified: Callable[..., Any] | None = None
    items: list[tuple[str, str]] = field(default_factory=list)
    content: Properties | None = None
    visible: bool = True
    enabled: bool = True


@dataclass(eq=False)
class Properties:
    """An ``obs_properties_t``: properties in the order they were added."""

    items: list[Property] = field(default_factory=list)
    parent: Properties | None = None

    def walk(self) -> Iterator[Property]:
        for prop in self.items:
            yield prop
            if prop.content is not None:
                yield from prop.content.walk()

    def get(self, name: str) -> Property | None:
        return next((p for p in self.walk() if p.name == name), None)

    def __getitem__(self, name: str) -> Property:
        prop = self.get(name)
        if prop is None:
            raise KeyError(f"no property {name!r}; there are {[p.name for p in self.walk()]}")
        return prop

    def root(self) -> Properties:
        return self if self.parent is None else self.parent.root()


@dataclass(eq=False)
class Timer:
    callback: Callable[[], Any]
    interval_s: float
    due: float


class ScriptStdout:
    """OBS's replacement for a script's ``sys.stdout``: writes go to ``script_log_no_endl``."""

    def __init__(self, obs: FakeObs, level: int) -> None:
        self.obs = obs
        self.level = level

    def write(self, message: str) -> int:
        self.obs.script_log_no_endl(self.level, message)
        return len(message)

    def flush(self) -> None:
        pass


class FakeObs:
    """OBS, as far as one Python script can tell."""

    # -- constants, with the values of OBS's headers ------------------------------------------

    LOG_ERROR = 100
    LOG_WARNING = 200
    LOG_INFO = 300
    LOG_DEBUG = 400

    OBS_TEXT_DEFAULT = 0
    OBS_TEXT_PASSWORD = 1
    OBS_TEXT_MULTILINE = 2
    OBS_TEXT_INFO = 3
    OBS_TEXT_INFO_NORMAL = 0
    OBS_TEXT_INFO_WARNING = 1
    OBS_TEXT_INFO_ERROR = 2

    OBS_COMBO_TYPE_INVALID = 0
    OBS_COMBO_TYPE_EDITABLE = 1
    OBS_COMBO_TYPE_LIST = 2
    OBS_COMBO_TYPE_RADIO = 3
    OBS_COMBO_FORMAT_INVALID = 0
    OBS_COMBO_FORMAT_INT = 1
    OBS_COMBO_FORMAT_FLOAT = 2
    OBS_COMBO_FORMAT_STRING = 3
    OBS_COMBO_FORMAT_BOOL = 4

    OBS_GROUP_NORMAL = 1
    OBS_GROUP_CHECKABLE = 2

    OBS_FRONTEND_EVENT_STREAMING_STARTING = 0
    OBS_FRONTEND_EVENT_STREAMING_STARTED = 1
    OBS_FRONTEND_EVENT_STREAMING_STOPPING = 2
    OBS_FRONTEND_EVENT_STREAMING_STOPPED = 3
    OBS_FRONTEND_EVENT_RECORDING_STARTING = 4
    OBS_FRONTEND_EVENT_RECORDING_STARTED = 5
    OBS_FRONTEND_EVENT_RECORDING_STOPPING = 6
    OBS_FRONTEND_EVENT_RECORDING_STOPPED = 7
    OBS_FRONTEND_EVENT_SCENE_CHANGED = 8
    OBS_FRONTEND_EVENT_EXIT = 17
    OBS_FRONTEND_EVENT_FINISHED_LOADING = 26
    OBS_FRONTEND_EVENT_SCRIPTING_SHUTDOWN = 36

    def __init__(self, *, missing: tuple[str, ...] = ()) -> None:
        """``missing``: names this OBS lacks (an older version)."""
        self.missing = set(missing)
        self.obs_thread = threading.get_ident()
        self.settings = ObsData()
        self.log: list[tuple[int, str]] = []
        self._log_chunk = ""
        self.event_callbacks: list[Callable[[int], Any]] = []
        self.timers: list[Timer] = []
        self.ignored: list[tuple[str, Any]] = []
        self.data: list[ObsData] = []
        self.durations: list[tuple[str, float]] = []  # what the script itself took
        self.walls: list[tuple[str, float]] = []  # the same calls, by the wall clock
        self.foreign_calls: list[str] = []
        self.texts: list[str] = []  # every description, label and string the script set
        self.streaming = False
        self.view: Properties | None = None
        self.script: types.ModuleType | None = None
        self.on_load: list[Callable[[types.ModuleType], Any]] = []  # test hooks after load
        self.description = ""
        self.import_s = 0.0
        self.stdout = ScriptStdout(self, self.LOG_INFO)
        self._current: Any = None

    # == what the script sees as ``obspython`` ====================================================

    def module(self) -> types.ModuleType:
        module = types.ModuleType("obspython")
        for name in dir(type(self)):
            exported = name.startswith(("obs_", "OBS_", "LOG_", "timer_")) or name in (
                "script_log",
                "script_log_no_endl",
                "remove_current_callback",
            )
            if exported and name not in self.missing:
                setattr(module, name, getattr(self, name))
        return module

    def _called(self, name: str) -> None:
        if threading.get_ident() != self.obs_thread:
            self.foreign_calls.append(f"{name} from thread {threading.current_thread().name}")

    # -- obs_data -------------------------------------------------------------------------

    def obs_data_create(self) -> ObsData:
        self._called("obs_data_create")
        data = ObsData(owner="script")
        self.data.append(data)
        return data

    def obs_data_addref(self, data: ObsData) -> None:
        self._called("obs_data_addref")
        data.refs += 1

    def obs_data_release(self, data: ObsData | None) -> None:
        self._called("obs_data_release")
        if data is not None:
            assert data.refs > 0, "obs_data_release on data already released"
            data.refs -= 1

    def obs_data_get_string(self, data: ObsData, name: str) -> str:
        self._called("obs_data_get_string")
        return str(data.get(name, ""))

    def obs_data_get_bool(self, data: ObsData, name: str) -> bool:
        self._called("obs_data_get_bool")
        return bool(data.get(name, False))

    def obs_data_get_int(self, data: ObsData, name: str) -> int:
        self._called("obs_data_get_int")
        return int(data.get(name, 0))

    def obs_data_set_string(self, data: ObsData, name: str, value: str) -> None:
        self._called("obs_data_set_string")
        assert isinstance(value, str), (name, value)
        self.texts.append(value)
        data.values[name] = value

    def obs_data_set_bool(self, data: ObsData, name: str, value: bool) -> None:
        self._called("obs_data_set_bool")
        data.values[name] = bool(value)

    def obs_data_set_int(self, data: ObsData, name: str, value: int) -> None:
        self._called("obs_data_set_int")
        data.values[name] = int(value)

    def obs_data_set_default_string(self, data: ObsData, name: str, value: str) -> None:
        self._called("obs_data_set_default_string")
        self.texts.append(value)
        data.defaults[name] = value

    def obs_data_set_default_bool(self, data: ObsData, name: str, value: bool) -> None:
        self._called("obs_data_set_default_bool")
        data.defaults[name] = bool(value)

    def obs_data_set_default_int(self, data: ObsData, name: str, value: int) -> None:
        self._called("obs_data_set_default_int")
        data.defaults[name] = int(value)

    # -- properties -----------------------------------------------------------------------

    def obs_properties_create(self) -> Properties:
        self._called("obs_properties_create")
        return Properties()

    def _add(self, props: Properties, prop: Property) -> Property:
        assert isinstance(props, Properties), props
        if props.root().get(prop.name) is not None:  # OBS refuses a second one of a name
            raise AssertionError(f"two properties named {prop.name!r}")
        self.texts.append(prop.description)
        props.items.append(prop)
        return prop

    def obs_properties_add_bool(self, props: Properties, name: str, description: str) -> Property:
        self._called("obs_properties_add_bool")
        return self._add(props, Property(name, "bool", description))

    def obs_properties_add_text(
        self, props: Properties, name: str, description: str, text_type: int
    ) -> Property:
        self._called("obs_properties_add_text")
        return self._add(props, Property(name, "text", description, text_type=text_type))

    def obs_properties_add_list(
        self, props: Properties, name: str, description: str, combo_type: int, combo_format: int
    ) -> Property:
        self._called("obs_properties_add_list")
        assert combo_format == self.OBS_COMBO_FORMAT_STRING, "only string lists are modelled"
        return self._add(props, Property(name, "list", description))

    def obs_property_list_add_string(self, prop: Property, label: str, value: str) -> int:
        self._called("obs_property_list_add_string")
        self.texts.append(label)
        prop.items.append((label, value))
        return len(prop.items) - 1

    def obs_properties_add_button(
        self, props: Properties, name: str, text: str, callback: Any
    ) -> Property | None:
        self._called("obs_properties_add_button")
        if not isinstance(callback, types.FunctionType):
            self.ignored.append(("obs_properties_add_button", callback))
            return None
        return self._add(props, Property(name, "button", text, callback=callback))

    def obs_properties_add_group(
        self, props: Properties, name: str, description: str, group_type: int, content: Any
    ) -> Property:
        self._called("obs_properties_add_group")
        assert isinstance(content, Properties) and content.parent is None
        content.parent = props
        return self._add(props, Property(name, "group", description, content=content))

    def obs_properties_get(self, props: Properties, name: str) -> Property | None:
        self._called("obs_properties_get")
        return props.get(name)

    def obs_properties_apply_settings(self, props: Properties, settings: ObsData) -> None:
        self._called("obs_properties_apply_settings")
        for prop in list(props.walk()):
            if prop.modified is not None:
                self._run(f"modified {prop.name}", prop.modified, props, prop, settings)

    def obs_property_set_description(self, prop: Property, description: str) -> None:
        self._called("obs_property_set_description")
        self.texts.append(description)
        prop.description = description

    def obs_property_set_long_description(self, prop: Property, text: str) -> None:
        self._called("obs_property_set_long_description")
        self.texts.append(text)
        prop.long_description = text

    def obs_property_text_set_info_type(self, prop: Property, info_type: int) -> None:
        self._called("obs_property_text_set_info_type")
        prop.info_type = info_type

    def obs_property_text_set_info_word_wrap(self, prop: Property, wrap: bool) -> None:
        self._called("obs_property_text_set_info_word_wrap")

    def obs_property_set_visible(self, prop: Property, visible: bool) -> None:
        self._called("obs_property_set_visible")
        prop.visible = visible

    def obs_property_set_enabled(self, prop: Property, enabled: bool) -> None:
        self._called("obs_property_set_enabled")
        prop.enabled = enabled

    def obs_property_set_modified_callback(self, prop: Property, callback: Any) -> None:
        self._called("obs_property_set_modified_callback")
        if not isinstance(callback, types.FunctionType):
            self.ignored.append(("obs_property_set_modified_callback", callback))
            return
        prop.modified = callback

    def obs_property_name(self, prop: Property) -> str:
        self._called("obs_property_name")
        return prop.name

    # -- frontend -------------------------------------------------------------------------

    def obs_frontend_add_event_callback(self, callback: Any) -> None:
        self._called("obs_frontend_add_event_callback")
        if not isinstance(callback, types.FunctionType):  # OBS: PyFunction_Check, or nothing
            self.ignored.append(("obs_frontend_add_event_callback", callback))
            return
        self.event_callbacks.append(callback)

    def obs_frontend_remove_event_callback(self, callback: Any) -> None:
        self._called("obs_frontend_remove_event_callback")
        if callback in self.event_callbacks:
            self.event_callbacks.remove(callback)

    def obs_frontend_streaming_active(self) -> bool:
        self._called("obs_frontend_streaming_active")
        return self.streaming

    # -- timers and the script log --------------------------------------------------------

    def timer_add(self, callback: Any, milliseconds: int) -> None:
        self._called("timer_add")
        if not isinstance(callback, types.FunctionType):
            self.ignored.append(("timer_add", callback))
            return
        interval = milliseconds / 1000
        self.timers.append(Timer(callback, interval, time.monotonic() + interval))

    def timer_remove(self, callback: Any) -> None:
        self._called("timer_remove")
        self.timers = [t for t in self.timers if t.callback is not callback]

    def remove_current_callback(self) -> None:
        self._called("remove_current_callback")
        current = self._current
        self.timers = [t for t in self.timers if t is not current]
        self.event_callbacks = [c for c in self.event_callbacks if c is not current]

    def script_log(self, level: int, message: str) -> None:
        self._called("script_log")
        self.script_log_no_endl(level, message + "\n")

    def script_log_no_endl(self, level: int, message: str) -> None:
        """OBS keeps a partial line until its newline comes."""
        self._called("script_log_no_endl")
        self._log_chunk += message
        *lines, self._log_chunk = self._log_chunk.split("\n")
        self.log.extend((level, line) for line in lines)

    # == OBS's side, for tests =====================================================================

    def _run(self, what: str, func: Callable[..., Any], *args: Any) -> Any:
        """Call into the script as OBS would, on this thread, and time it. Meanwhile the
        script's ``sys.stdout`` is OBS's (pytest puts its own back between test phases)."""
        assert threading.get_ident() == self.obs_thread, "OBS calls scripts on its own threads"
        saved = sys.stdout
        sys.stdout = self.stdout
        queued, collecting, start = _runqueue_s(), _GC.total, time.perf_counter()
        try:
            return func(*args)
        finally:
            wall = time.perf_counter() - start
            machine = (_runqueue_s() - queued) + (_GC.total - collecting)
            self.durations.append((what, max(0.0, wall - machine)))
            self.walls.append((what, wall))
            sys.stdout = saved

    def _entry(self, name: str, *args: Any, script: types.ModuleType | None = None) -> Any:
        """Call one of the script's entry points, if it has it (they are all optional)."""
        func = getattr(script or self.script, name, None)
        return None if func is None else self._run(name, func, *args)

    def load(
        self,
        path: Path,
        values: dict[str, Any] | None = None,
        prepare: Callable[[types.ModuleType], Any] | None = None,
    ) -> types.ModuleType:
        """Import the script with this stand-in as ``obspython`` and start it like OBS does.

        ``values`` are settings a person made before; ``prepare`` may change the freshly
        imported module (shorter timeouts) before OBS calls into it.
        """
        sys.modules["obspython"] = self.module()
        name = f"obs_script_{path.stem}_{next(_counter)}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        script = importlib.util.module_from_spec(spec)
        # Importing is a one-time cost of adding the script, not a call that could wait on
        # anything: it is timed apart from the calls into the script.
        start = time.perf_counter()
        spec.loader.exec_module(script)
        self.import_s = time.perf_counter() - start
        if prepare is not None:
            prepare(script)
        self.script = script
        self.settings.values.update(values or {})
        self._entry("script_defaults", self.settings)
        self.description = self._entry("script_description") or ""
        self._entry("script_load", self.settings)
        self._entry("script_update", self.settings)
        for hook in self.on_load:
            hook(script)
        return script

    def unload(self) -> None:
        if self.script is not None:
            script, self.script = self.script, None
            self._entry("script_unload", script=script)

    def save(self) -> ObsData:
        """OBS saving the script's settings (``script_save`` writes its extra data there)."""
        assert self.script is not None
        self._entry("script_save", self.settings)
        return self.settings

    def properties(self) -> Properties:
        """The properties view being (re)built: ``script_properties``."""
        assert self.script is not None
        self.view = self._entry("script_properties")
        assert isinstance(self.view, Properties)
        return self.view

    def click(self, name: str) -> bool:
        """Press a button of the current view; a ``True`` answer rebuilds the view."""
        view = self.view if self.view is not None else self.properties()
        prop = view[name]
        assert prop.kind == "button" and prop.callback is not None, prop
        redraw = self._run(f"button {name}", prop.callback, view, prop)
        assert isinstance(redraw, bool), f"button {name} answered {redraw!r}, not a bool"
        if redraw:
            self.properties()
        return redraw

    def set(self, name: str, value: Any) -> None:
        """A person changing a setting in the view: modified callback, then script_update."""
        assert self.script is not None
        self.settings.values[name] = value
        view = self.view if self.view is not None else self.properties()
        prop = view.get(name)
        modified = prop.modified if prop is not None else None
        if modified is not None and self._run(
            f"modified {name}", modified, view, prop, self.settings
        ):
            self.properties()  # the callback asked for the view to be drawn again
        self._entry("script_update", self.settings)

    def fire(self, event: int) -> None:
        """A frontend event, to every registered callback."""
        if event == self.OBS_FRONTEND_EVENT_STREAMING_STARTING:
            self.streaming = True
        if event == self.OBS_FRONTEND_EVENT_STREAMING_STOPPED:
            self.streaming = False
        for callback in list(self.event_callbacks):
            self._current = callback
            try:
                self._run(f"event {event}", callback, event)
            finally:
                self._current = None

    def tick(self) -> None:
        """One frame tick: every timer that is due runs once."""
        now = time.monotonic()
        for timer in list(self.timers):
            if timer.due <= now:
                timer.due = now + timer.interval_s
                self._current = timer
                try:
                    self._run("timer", timer.callback)
                finally:
                    self._current = None

    def run_until(self, what: str, condition: Callable[[], Any], timeout: float = 20.0) -> Any:
        """Tick (every 10 ms, like a busy OBS) until ``condition()`` is true."""
        deadline = time.monotonic() + timeout
        while True:
            self.tick()
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting for {what}; script log:\n{self.log_text()}")
            time.sleep(0.01)

    def run_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.tick()
            time.sleep(0.01)

    # -- reading what happened ------------------------------------------------------------

    def log_text(self) -> str:
        return "\n".join(line for _, line in self.log)

    def slowest(self) -> tuple[str, float]:
        return max(self.durations, key=lambda d: d[1], default=("nothing", 0.0))

    def leaked_data(self) -> list[ObsData]:
        return [d for d in self.data if d.refs > 0]
