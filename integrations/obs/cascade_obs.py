"""Cascade for OBS Studio: OBS's own Start/Stop Streaming drives Cascade's output groups.

Load it in OBS -> Tools -> Scripts (+). It talks to Cascade's local API (``cascade run``)
and does what a streamer would otherwise do by hand or with a Stream Deck button.

Settings and buttons
    Agent URL (``http://127.0.0.1:47830``), API token (``cascade token`` prints it), what
    happens when OBS starts streaming (start the groups, or arm them), and per group of
    Cascade's active profile a "Follow OBS" tick box with Start / Stop / Toggle buttons (they
    can be hidden). Refresh asks Cascade for its groups; the list is kept in the script's
    settings so the tick boxes are there while Cascade is not running. A line at the top
    shows Cascade's state ("Connected — main: live (2 of 2 targets), 720p: idle").

Following OBS
    STREAMING_STARTING (or STARTED, if the script missed that) starts the ticked groups, or
    arms them: an armed group goes live by itself once the stream reaches Cascade.
    STREAMING_STOPPED stops them (stopping also disarms); it is the STOPPED event, not
    STOPPING, so the stream's last seconds still reach the platforms. The groups started
    for a stream are the ones stopped when it ends, even if a box was unticked meanwhile;
    ticking a box while live does not start that group: it follows from the next stream.

Decisions
    - OBS never waits for Cascade. Every HTTP call runs on one worker thread with a timeout;
      answers come back through a queue and a timer applies them on OBS's side. A button
      waits at most ``CLICK_WAIT_S`` (20 ms) for its answer, so the properties usually show
      its result at once; a slower answer shows the next time they are drawn (OBS redraws a
      script's properties only after a callback, never from a timer).
    - A start or stop that could not reach Cascade (not running, too slow, token refused) is
      kept and sent again as soon as Cascade answers, while OBS is still in the same
      streaming state: starting OBS before Cascade still ends with the groups live.
    - The script log says when Cascade goes away or comes back, once, not at every poll.
      Polls run every 2 s (5 s while Cascade is away); a refused token (or an answer that
      is not Cascade's) stops them until the settings change or Refresh is pressed: each
      wrong token makes the agent slower to answer. Cascade refusing one start (a stream
      key missing, say) is logged with Cascade's reason and not retried.
    - The group list is kept in the script's settings (``script_save``); the settings are
      read only where OBS hands them over (``script_load``, ``script_update``), never from
      the timer. Properties are never kept past the call that built them.
    - Reloading the script while OBS streams starts the ticked groups again (starting a
      started group changes nothing); unloading it touches no group. OBS closing while it
      streams stops them: the request is sent, its answer is not awaited.
    - The token goes only into the ``Authorization`` header; it never appears in the log,
      in a text the properties show or in a setting this script writes. Proxy settings from
      the environment are ignored: the agent is reached directly.
    - Python 3.6+ and its standard library only (OBS embeds its own Python). Every OBS call
      happens on OBS's threads; the worker thread only does HTTP.
"""

import _thread
import http.client
import json
import queue
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import obspython as obs

DEFAULT_URL = "http://127.0.0.1:47830"
STATUS_TIMEOUT_S = 3.0  # reading the status: the agent answers in milliseconds
ACTION_TIMEOUT_S = 15.0  # start/stop: the agent answers once processes started or ended
POLL_CONNECTED_S = 2.0
POLL_AWAY_S = 5.0
SETTLE_S = 0.5  # after the URL or token changed: one poll once typing has paused
TIMER_MS = 100
CLICK_WAIT_S = 0.02

MODES = (
    ("start", "Start the ticked groups"),
    ("arm", "Arm the ticked groups (live once the stream reaches Cascade)"),
)
GROUPS_KEY = "cascade_groups"  # the group list last read from the agent, kept in settings
RETRYABLE = ("away", "slow", "refused", "no_token")

_cascade = None  # the one _Cascade while the script is loaded


# -- the worker thread: HTTP only, never an OBS call --------------------------------------


class _Job:
    """One request for the worker; ``result`` is set there and read on OBS's side."""

    def __init__(self, kind, method, path, url, token, timeout, group=None, action=None):
        self.kind = kind  # "status", "follow" or "button"
        self.method = method
        self.path = path
        self.url = url
        self.token = token
        self.timeout = timeout
        self.group = group
        self.action = action
        self.result = None
        self.done = threading.Event()


class _Result:
    """What came back: ``outcome`` is "ok", "away", "slow", "refused", "http" or "alien"."""

    def __init__(self, outcome, data=None, status=None, message=""):
        self.outcome = outcome
        self.data = data
        self.status = status
        self.message = message


class _Worker:
    """A single background thread that runs jobs in order; closing it never waits."""

    def __init__(self):
        self.jobs = queue.Queue()
        self.answers = queue.Queue()
        self.finished = threading.Event()
        # _thread rather than threading.Thread: Thread.start() waits until the new thread
        # runs, and on a busy machine that wait would fall on OBS's thread. Like a daemon
        # thread, it never holds up OBS's exit.
        _thread.start_new_thread(self._run, ())

    def submit(self, job):
        self.jobs.put(job)

    def close(self):
        # Jobs already queued still go out (a stop on OBS's exit); a request under way ends
        # by its own timeout. Nobody joins the thread: OBS must not wait for it.
        self.jobs.put(None)

    def _run(self):
        try:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            while True:
                job = self.jobs.get()
                if job is None:
                    return
                job.result = _request(opener, job)
                self.answers.put(job)
                job.done.set()
        finally:
            self.finished.set()


def _request(opener, job):
    headers = {"Accept": "application/json"}
    if job.token:
        headers["Authorization"] = "Bearer " + job.token
    request = urllib.request.Request(job.url + job.path, headers=headers, method=job.method)
    try:
        with opener.open(request, timeout=job.timeout) as answer:
            body = answer.read()
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read()
        except (OSError, ValueError):
            body = b""
        finally:
            exc.close()
        return _Result(
            "refused" if exc.code == 401 else "http", status=exc.code, message=_message(body)
        )
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, socket.timeout):
            return _Result("slow")
        return _Result("away", message=str(exc.reason))
    except socket.timeout:  # connected, then no answer in time
        return _Result("slow")
    except (OSError, ValueError, http.client.HTTPException) as exc:  # the connection broke
        return _Result("away", message=type(exc).__name__)
    except Exception as exc:  # the worker must outlive anything one request does
        return _Result("alien", message=type(exc).__name__)
    try:
        return _Result("ok", data=json.loads(body.decode("utf-8")))
    except ValueError:
        return _Result("alien")


def _message(body):
    """The agent's error message from an error answer's JSON body, if it has one."""
    try:
        error = json.loads(body.decode("utf-8")).get("error") or {}
        return str(error.get("message") or "")
    except (ValueError, AttributeError):
        return ""


# -- the script's state, on OBS's side ----------------------------------------------------


class _Cascade:
    """Settings, what the agent said last, and what OBS's streaming asked for."""

    def __init__(self, settings):
        self.worker = _Worker()
        self.lock = threading.RLock()  # OBS calls in from its UI thread and its timer thread
        self.url = DEFAULT_URL
        self.token = ""
        self.mode = "start"
        self.show_buttons = True
        self.follow = set()
        self.groups = _cached_groups(settings)  # [{"id": ..., "name": ...}], agent's order
        self.views = {}  # group id -> the agent's last view of it
        self.link = "unknown"  # connected, away, slow, refused, no_token, bad_url, http, alien
        self.problem = ""
        self.streaming = False
        self.followed = set()  # groups started (or armed) for the current stream
        self.unsent = {}  # group id -> "start"/"arm"/"stop" not yet taken by Cascade
        self.in_flight = {}  # group id -> follow requests under way
        self.polling = False
        self.next_poll = 0.0
        self.closed = False

    # -- settings ---------------------------------------------------------------------------

    def read_settings(self, settings, now):
        url = obs.obs_data_get_string(settings, "url").strip().rstrip("/") or DEFAULT_URL
        token = obs.obs_data_get_string(settings, "token").strip()
        with self.lock:
            if (url, token) != (self.url, self.token):
                self.url, self.token = url, token
                self.link, self.problem = "unknown", ""
                # On load: at once. While someone types: once the typing pauses.
                self.next_poll = now + SETTLE_S if self.next_poll else now
            self.mode = obs.obs_data_get_string(settings, "mode") or "start"
            self.show_buttons = obs.obs_data_get_bool(settings, "show_buttons")
            self.follow = {
                g["id"] for g in self.groups if obs.obs_data_get_bool(settings, "follow_" + g["id"])
            }

    # -- OBS's streaming --------------------------------------------------------------------

    def stream_started(self, news="OBS started streaming"):
        with self.lock:
            if self.streaming or self.closed:
                return  # STARTING and then STARTED: once per stream
            self.streaming = True
            self.followed = set(self.follow)
            groups = self._ordered(self.followed)
            if not groups:
                _say(f"{news}; no Cascade group follows OBS (tick them in the Cascade "
                     "script's settings)")  # fmt: skip
                return
            verb = "arming" if self.mode == "arm" else "starting"
            _say(f"{news}: {verb} {', '.join(groups)} in Cascade")
            for group in groups:
                self._follow(group, self.mode)

    def stream_stopped(self):
        with self.lock:
            groups = self._ordered(self.followed | self.follow)
            self.streaming = False
            self.followed = set()
            if self.closed:
                return
            # A start still waiting for Cascade is replaced: the stream it was for has ended.
            for group in list(self.unsent):
                if group not in groups:
                    del self.unsent[group]
            if groups:
                _say(f"OBS stopped streaming: stopping {', '.join(groups)} in Cascade")
            for group in groups:
                self._follow(group, "stop")

    def obs_closing(self):
        with self.lock:
            if self.streaming or self.followed:
                self.stream_stopped()
            self.close()

    def _follow(self, group, action):
        self.unsent[group] = action
        if self._usable():
            self._send_follow(group, action)

    def _send_follow(self, group, action):
        self.in_flight[group] = self.in_flight.get(group, 0) + 1
        self._submit("follow", "POST", _action_path(group, action), group, action)

    def _answered(self, group):
        left = self.in_flight.pop(group, 0) - 1
        if left > 0:
            self.in_flight[group] = left

    # -- buttons ----------------------------------------------------------------------------

    def click(self, group, action):
        with self.lock:
            if not self._usable():
                _say(f"Could not {action} {group}: {self.problem}")
                return True
            job = self._submit("button", "POST", _action_path(group, action), group, action)
        job.done.wait(CLICK_WAIT_S)  # never holding the lock: the timer thread may need it
        self.apply_answers()
        return True

    def refresh(self, now):
        with self.lock:
            if self.link in ("refused", "http", "alien"):
                self.link, self.problem = "unknown", ""
            job = self._poll(now)
        if job is not None:
            job.done.wait(CLICK_WAIT_S)
            self.apply_answers()
        return True

    # -- the timer --------------------------------------------------------------------------

    def tick(self, now):
        self.apply_answers()
        with self.lock:
            if now >= self.next_poll and self.link not in ("refused", "http", "alien"):
                self._poll(now)

    def _poll(self, now):
        if self.polling or self.closed:
            return None
        self.next_poll = now + (POLL_CONNECTED_S if self.link == "connected" else POLL_AWAY_S)
        if not self._usable():
            return None
        self.polling = True
        return self._submit("status", "GET", "/api/v1/status")

    def apply_answers(self):
        while True:
            try:
                job = self.worker.answers.get_nowait()
            except queue.Empty:
                return
            with self.lock:
                if not self.closed:
                    self._apply(job)

    def _apply(self, job):
        result = job.result
        if job.kind == "status":
            self.polling = False
        elif job.kind == "follow":
            self._answered(job.group)
        if (job.url, job.token) != (self.url, self.token):
            return  # asked of another agent (or with another token) than the one set now
        if job.kind == "status":
            if result.outcome == "ok":
                self._connected(result.data)
            else:
                self._trouble(result)
            return
        taken = result.outcome in ("ok", "http")  # Cascade answered: done, or refused it
        retry = job.kind == "follow" and result.outcome in RETRYABLE
        if job.kind == "follow" and not retry and self.unsent.get(job.group) == job.action:
            del self.unsent[job.group]
        if taken:
            self._set_link("connected")
        else:
            self._trouble(result)
        if result.outcome == "ok":
            view = result.data
            if isinstance(view, dict) and view.get("id") == job.group:
                self.views[job.group] = view
                _say(f"Cascade: {job.group} is {_describe(view)}")
        elif result.outcome == "http":
            reason = result.message or f"it answered HTTP {result.status}"
            _say(f"Cascade could not {job.action} {job.group}: {reason}")
        elif retry:
            _say(f"Cascade has not taken '{job.action} {job.group}' yet; it is sent again once "
                 "Cascade answers")  # fmt: skip
        else:
            _say(f"Could not {job.action} {job.group}: {self.problem}")

    def _connected(self, status):
        groups = status.get("groups") if isinstance(status, dict) else None
        if not isinstance(groups, list):
            self._trouble(_Result("alien"))
            return
        self.groups = [{"id": str(g.get("id")), "name": str(g.get("name") or "")} for g in groups]
        self.views = {str(g.get("id")): g for g in groups}
        self._set_link("connected")
        for group, action in sorted(self.unsent.items()):
            if not self.in_flight.get(group):
                self._send_follow(group, action)

    def _trouble(self, result):
        if result.outcome == "http":
            detail = result.message or f"HTTP {result.status}"
            self._set_link("http", f"Cascade at {self.url} refused the request: {detail}")
        else:
            self._set_link(result.outcome)

    def _set_link(self, link, problem=""):
        if link != "connected" and not problem:
            problem = _problem(link, self.url)
        changed = (link, problem) != (self.link, self.problem)
        self.link, self.problem = link, problem
        if link == "connected":
            self.next_poll = min(self.next_poll, time.monotonic() + POLL_CONNECTED_S)
        if changed:  # said once, not at every poll
            _say(f"Connected to Cascade at {self.url}" if link == "connected" else problem)

    # -- helpers ----------------------------------------------------------------------------

    def _usable(self):
        """Whether a request can be sent at all; if not, ``problem`` says why."""
        if not self.url.startswith(("http://", "https://")):
            self._set_link("bad_url")
            return False
        if not self.token:
            self._set_link("no_token")
            return False
        return not self.closed

    def _submit(self, kind, method, path, group=None, action=None):
        timeout = STATUS_TIMEOUT_S if kind == "status" else ACTION_TIMEOUT_S
        job = _Job(kind, method, path, self.url, self.token, timeout, group, action)
        self.worker.submit(job)
        return job

    def _ordered(self, ids):
        known = [g["id"] for g in self.groups]
        return [i for i in known if i in ids] + sorted(i for i in ids if i not in known)

    def close(self):
        if not self.closed:
            self.closed = True
            self.worker.close()

    # -- what the properties show -----------------------------------------------------------

    def state_text(self):
        with self.lock:
            if self.link == "connected":
                parts = [f"{g['id']}: {_describe(self.views.get(g['id']))}" for g in self.groups]
                line = "Connected — " + (
                    ", ".join(parts) if parts else "the active profile has no groups yet"
                )
            elif self.link == "unknown":
                line = f"Asking Cascade at {self.url} …"
            else:
                line = self.problem
            following = self._ordered(self.follow)
            if following:
                verb = "arm" if self.mode == "arm" else "start"
                line += f"\nWhen OBS starts streaming: {verb} {', '.join(following)}"
            elif self.groups:
                line += "\nNo group follows OBS yet: tick the ones below"
            else:
                line += "\nPress Refresh once Cascade runs to list its groups"
            return line


def _problem(link, url):
    return {
        "away": f"Cascade is not running at {url} — start Cascade, then press Refresh",
        "slow": f"Cascade at {url} did not answer in time — it may be busy or stuck; "
        "restart it, then press Refresh",
        "refused": f"Cascade at {url} refused the API token — run 'cascade token' and paste "
        "what it prints into API token",
        "no_token": "No API token set — run 'cascade token' and paste what it prints into "
        "API token",
        "bad_url": f"The agent URL must look like {DEFAULT_URL}",
        "alien": f"Something answers at {url}, but it is not Cascade — check the agent URL",
    }.get(link, "")


def _describe(view):
    """A group's state in a few words: "live (2 of 2 targets)", "armed", "idle"."""
    if not isinstance(view, dict):
        return "unknown"
    state = view.get("state")
    total = len([t for t in view.get("targets") or [] if t.get("state") != "disabled"])
    unit = "target" if total == 1 else "targets"
    figures = f"({view.get('targets_live', 0)} of {total} {unit})"
    words = {
        "live": "live " + figures,
        "degraded": "live with trouble " + figures,
        "starting": "starting " + figures,
        "waiting": "started (waiting for the stream)",
        "armed": "armed",
        "idle": "idle",
    }
    return words.get(state, str(state))


def _action_path(group, action):
    return f"/api/v1/groups/{urllib.parse.quote(group, safe='')}/{action}"


def _cached_groups(settings):
    try:
        groups = json.loads(obs.obs_data_get_string(settings, GROUPS_KEY) or "[]")
        return [{"id": str(g["id"]), "name": str(g.get("name") or "")} for g in groups]
    except (ValueError, TypeError, KeyError, AttributeError):
        return []


def _say(text):
    """One line in OBS's script log (OBS sends a script's stdout there)."""
    cascade = _cascade
    if cascade is not None and len(cascade.token) >= 8:
        text = text.replace(cascade.token, "[token]")  # an agent message must not leak it
    print("[Cascade] " + text)


# -- what OBS calls -----------------------------------------------------------------------


def script_description():
    return (
        "<b>Cascade</b>: OBS streams once to Cascade, Cascade relays it to every platform."
        "<br>Tick the groups that follow OBS's Start/Stop Streaming. The API token is what "
        "<code>cascade token</code> prints."
    )


def script_defaults(settings):
    obs.obs_data_set_default_string(settings, "url", DEFAULT_URL)
    obs.obs_data_set_default_string(settings, "token", "")
    obs.obs_data_set_default_string(settings, "mode", "start")
    obs.obs_data_set_default_bool(settings, "show_buttons", True)


def script_load(settings):
    global _cascade
    if _cascade is not None:
        _cascade.close()
    _cascade = _Cascade(settings)
    _cascade.read_settings(settings, time.monotonic())
    obs.obs_frontend_add_event_callback(on_frontend_event)
    obs.timer_add(on_timer, TIMER_MS)
    if obs.obs_frontend_streaming_active():  # loaded (or reloaded) while OBS streams
        _cascade.stream_started("OBS is streaming")


def script_update(settings):
    if _cascade is not None:
        _cascade.read_settings(settings, time.monotonic())


def script_save(settings):
    if _cascade is not None:
        with _cascade.lock:
            groups = list(_cascade.groups)
        obs.obs_data_set_string(settings, GROUPS_KEY, json.dumps(groups))


def script_unload():
    global _cascade
    obs.timer_remove(on_timer)
    obs.obs_frontend_remove_event_callback(on_frontend_event)
    if _cascade is not None:
        _cascade.close()
        _cascade = None


def script_properties():
    cascade = _cascade
    props = obs.obs_properties_create()
    state = obs.obs_properties_add_text(
        props, "cascade_state", cascade.state_text() if cascade else "", _info_type()
    )
    if hasattr(obs, "obs_property_text_set_info_type") and cascade is not None:
        level = {"connected": "NORMAL", "unknown": "NORMAL", "away": "WARNING"}
        name = "OBS_TEXT_INFO_" + level.get(cascade.link, "ERROR")
        obs.obs_property_text_set_info_type(state, getattr(obs, name, 0))

    obs.obs_properties_add_text(props, "url", "Agent URL", obs.OBS_TEXT_DEFAULT)
    token = obs.obs_properties_add_text(props, "token", "API token", obs.OBS_TEXT_PASSWORD)
    obs.obs_property_set_long_description(
        token, "Run 'cascade token' in a terminal and paste what it prints"
    )
    mode = obs.obs_properties_add_list(
        props,
        "mode",
        "When OBS starts streaming",
        obs.OBS_COMBO_TYPE_LIST,
        obs.OBS_COMBO_FORMAT_STRING,
    )
    for value, label in MODES:
        obs.obs_property_list_add_string(mode, label, value)
    obs.obs_properties_add_button(props, "refresh", "Refresh from Cascade", on_refresh)
    buttons = obs.obs_properties_add_bool(
        props, "show_buttons", "Show Start / Stop / Toggle for each group"
    )
    obs.obs_property_set_modified_callback(buttons, on_show_buttons_modified)

    if cascade is None:
        return props
    with cascade.lock:
        groups = list(cascade.groups)
        views = dict(cascade.views) if cascade.link == "connected" else {}
        show_buttons = cascade.show_buttons
    for group in groups:
        gid = group["id"]
        title = f"{group['name']} ({gid})" if group["name"] and group["name"] != gid else gid
        if gid in views:
            title += " — " + _describe(views[gid])
        content = obs.obs_properties_create()
        obs.obs_properties_add_bool(content, "follow_" + gid, "Follow OBS's Start/Stop Streaming")
        if show_buttons:
            for action in ("start", "stop", "toggle"):
                obs.obs_properties_add_button(
                    content, f"{action}_{gid}", action.capitalize(), _group_button(gid, action)
                )
        obs.obs_properties_add_group(props, "group_" + gid, title, obs.OBS_GROUP_NORMAL, content)
    return props


def _info_type():
    # OBS_TEXT_INFO (a read-only line) came with OBS 27.1; older ones show a plain field.
    return getattr(obs, "OBS_TEXT_INFO", obs.OBS_TEXT_DEFAULT)


def _group_button(group, action):
    def clicked(props, prop):
        if _cascade is None:
            return False
        return _cascade.click(group, action)

    return clicked


def on_refresh(props, prop):
    if _cascade is None:
        return False
    return _cascade.refresh(time.monotonic())


def on_show_buttons_modified(props, prop, settings):
    if _cascade is not None:
        _cascade.show_buttons = obs.obs_data_get_bool(settings, "show_buttons")
    return True  # the group sections are drawn again with or without their buttons


def on_timer():
    if _cascade is not None:
        _cascade.tick(time.monotonic())


def on_frontend_event(event):
    cascade = _cascade
    if cascade is None:
        return
    if event in (
        obs.OBS_FRONTEND_EVENT_STREAMING_STARTING,
        obs.OBS_FRONTEND_EVENT_STREAMING_STARTED,
    ):
        cascade.stream_started()
    elif event == obs.OBS_FRONTEND_EVENT_STREAMING_STOPPED:
        cascade.stream_stopped()
    elif event in (
        obs.OBS_FRONTEND_EVENT_EXIT,
        getattr(obs, "OBS_FRONTEND_EVENT_SCRIPTING_SHUTDOWN", obs.OBS_FRONTEND_EVENT_EXIT),
    ):
        cascade.obs_closing()
