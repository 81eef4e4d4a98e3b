/**
 * The page's one store: the agent's status as the event stream tells it.
 *
 * The WebSocket's `hello` gives the whole status; every later event changes a part of it and
 * tells the subscribed views what changed (`{kind: 'group', id}` …), so a view updates only
 * the card concerned. Bitrate history for the sparklines and the moment each figure arrived
 * (to count uptime on between events) are kept here too. Nothing in the store asks the network
 * for anything: app.js feeds it.
 */

export const HISTORY_MS = 5 * 60 * 1000;
const MAX_ALERTS = 5;

export class Store {
  constructor() {
    /** `/api/v1/status` as last known; null until the first `hello`. */
    this.status = null;
    /** `/api/v1/profile` (names, platforms, encoder settings); null until loaded. */
    this.config = null;
    /** The event stream: {state: 'connecting'|'open'|'reconnecting'|'closed', retryIn}. */
    this.connection = { state: 'closed', retryIn: null };
    /** target id → [{t: ms, v: kbit/s}] over the last five minutes. */
    this.history = new Map();
    /** target id → performance.now() when its figures last arrived. */
    this.seenAt = new Map();
    /** The latest `error` events, newest first. */
    this.alerts = [];
    this.version = null;
    this.listeners = new Set();
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(change) {
    for (const listener of [...this.listeners]) {
      try {
        listener(change, this);
      } catch (error) {
        console.error('a view failed to follow a change', error);
      }
    }
  }

  // -- reading ---------------------------------------------------------------------------

  group(id) {
    return this.status?.groups?.find((g) => g.id === id) ?? null;
  }

  target(id) {
    for (const group of this.status?.groups ?? []) {
      const found = group.targets?.find((t) => t.id === id);
      if (found) return { group, target: found };
    }
    return null;
  }

  /** The set-up of a target (name, platform) from the profile, if loaded. */
  targetConfig(id) {
    for (const group of this.config?.groups ?? []) {
      const found = group.targets?.find((t) => t.id === id);
      if (found) return found;
    }
    return null;
  }

  groupConfig(id) {
    return this.config?.groups?.find((g) => g.id === id) ?? null;
  }

  /** Totals counted from the groups as they are now (events do not carry totals). */
  totals() {
    const groups = this.status?.groups ?? [];
    const targets = groups.flatMap((g) => g.targets ?? []);
    return {
      groups_live: groups.filter((g) => g.state === 'live' || g.state === 'degraded').length,
      targets: targets.length,
      targets_live: targets.filter((t) => t.state === 'live').length,
      targets_failing: targets.filter((t) => t.state === 'retrying' || t.state === 'failed').length,
      bitrate_kbps: groups.reduce((sum, g) => sum + (Number(g.bitrate_kbps) || 0), 0),
    };
  }

  /** Uptime in seconds now, counted on locally from the last figures while live. */
  uptime(target) {
    if (target.uptime_s === null || target.uptime_s === undefined) return null;
    const seen = this.seenAt.get(target.id);
    if (target.state !== 'live' || seen === undefined) return target.uptime_s;
    return target.uptime_s + (performance.now() - seen) / 1000;
  }

  // -- changing --------------------------------------------------------------------------

  setConnection(state, retryIn = null) {
    const old = this.connection.state;
    this.connection = { state, retryIn };
    this.emit({ kind: 'connection', old, state });
  }

  setConfig(config) {
    this.config = config;
    this.emit({ kind: 'config' });
  }

  /** A whole status (the `hello`, or an answer of `/status`, `start-all`, `stop-all`). */
  setStatus(status) {
    this.status = status;
    const now = Date.now();
    for (const group of status.groups ?? []) this.noteFigures(group, now, false);
    this.emit({ kind: 'status' });
  }

  /** A group's view as an action answered it (`POST /groups/{id}/start` …). */
  mergeGroup(view) {
    const groups = this.status?.groups;
    if (!groups) return;
    const index = groups.findIndex((g) => g.id === view.id);
    if (index < 0) {
      this.emit({ kind: 'unknown', id: view.id });
      return;
    }
    const old = groups[index];
    groups[index] = { ...old, ...view, reason: view.reason ?? old.reason };
    this.noteFigures(groups[index], Date.now(), false);
    this.emit({ kind: 'group', id: view.id, old: old.state, state: groups[index].state });
  }

  /** A target's view as an action answered it (`POST /targets/{id}/toggle` …). */
  mergeTarget(view) {
    const found = this.target(view.id);
    if (!found) {
      this.emit({ kind: 'unknown', id: view.id });
      return;
    }
    const { group, target } = found;
    const old = target.state;
    const { group_state: groupState, ...fields } = view;
    Object.assign(target, fields);
    this.seenAt.set(target.id, performance.now());
    if (groupState && groupState !== group.state) {
      const oldGroup = group.state;
      group.state = groupState;
      this.emit({ kind: 'group', id: group.id, old: oldGroup, state: groupState });
    }
    this.emit({ kind: 'target', id: target.id, group: group.id, old, state: target.state });
  }

  /** One event from the WebSocket. */
  apply(event) {
    switch (event.type) {
      case 'hello':
        this.version = event.version ?? null;
        this.setStatus(event.status);
        return;
      case 'ingest.state':
        return this.applyIngest(event);
      case 'group.state':
        return this.applyGroupState(event);
      case 'target.state':
        return this.applyTargetState(event);
      case 'stats':
        return this.applyStats(event);
      case 'log':
        this.emit({ kind: 'log', line: event });
        return;
      case 'error':
        // One alert per source, its newest: a target retrying says the same thing each time.
        this.alerts = [
          { source: event.source, message: event.message, hint: event.hint, at: event.at },
          ...this.alerts.filter((a) => a.source !== event.source),
        ].slice(0, MAX_ALERTS);
        this.emit({ kind: 'alert', alert: this.alerts[0] });
        return;
      default:
        this.emit({ kind: 'event', event });
    }
  }

  dismissAlert(index) {
    this.alerts.splice(index, 1);
    this.emit({ kind: 'alerts' });
  }

  // -- internals -------------------------------------------------------------------------

  applyIngest(event) {
    const ingest = this.status?.ingest;
    if (!ingest) return;
    const old = ingest.state;
    ingest.state = event.state;
    ingest.reason = event.reason ?? '';
    if (event.state === 'receiving') {
      ingest.stream = { ...(event.info ?? {}) };
      if (event.info?.input_bitrate_kbps !== undefined) {
        ingest.bitrate_kbps = event.info.input_bitrate_kbps;
      }
    } else {
      ingest.stream = {};
      ingest.bitrate_kbps = null;
    }
    this.emit({ kind: 'ingest', old, state: event.state });
  }

  applyGroupState(event) {
    const group = this.group(event.group);
    if (!group) {
      this.emit({ kind: 'unknown', id: event.group });
      return;
    }
    const old = group.state;
    group.state = event.state;
    group.reason = event.reason ?? '';
    group.live = event.state === 'live' || event.state === 'degraded';
    // An armed group waits in "armed"; a stopped one (which is also disarmed) is "idle".
    if (event.state === 'armed') group.armed = true;
    else if (event.state === 'idle') group.armed = false;
    this.emit({ kind: 'group', id: group.id, old, state: event.state, reason: group.reason });
  }

  applyTargetState(event) {
    const found = this.target(event.target);
    if (!found) {
      this.emit({ kind: 'unknown', id: event.target });
      return;
    }
    const { group, target } = found;
    const old = target.state;
    target.state = event.state;
    target.reason = event.reason ?? '';
    if (event.state === 'disabled') target.enabled = false;
    else if (old === 'disabled') target.enabled = true;
    this.seenAt.set(target.id, performance.now());
    this.emit({
      kind: 'target',
      id: target.id,
      group: group.id,
      old,
      state: event.state,
      reason: target.reason,
    });
  }

  applyStats(event) {
    const groups = this.status?.groups;
    if (!groups) return;
    const index = groups.findIndex((g) => g.id === event.group);
    if (index < 0) {
      this.emit({ kind: 'unknown', id: event.group });
      return;
    }
    const old = groups[index];
    const reasons = new Map((old.targets ?? []).map((t) => [t.id, t.reason]));
    const next = { ...old, ...event.stats, reason: old.reason };
    next.targets = (event.stats.targets ?? old.targets ?? []).map((t) => ({
      ...t,
      reason: t.reason ?? reasons.get(t.id) ?? '',
    }));
    groups[index] = next;
    const structure = (g) => (g.targets ?? []).map((t) => t.id).join(',');
    this.noteFigures(next, Date.now(), true);
    if (event.ingest && this.status.ingest) {
      const state = this.status.ingest.state;
      Object.assign(this.status.ingest, event.ingest, { measuredLive: true });
      this.emit({ kind: 'ingest', old: state, state: this.status.ingest.state });
    }
    if (structure(old) !== structure(next)) this.emit({ kind: 'status' });
    else this.emit({ kind: 'stats', id: next.id });
  }

  /** Remember when figures arrived and, for stats, add a point to each bitrate history. */
  noteFigures(group, now, sample) {
    const seen = performance.now();
    for (const target of group.targets ?? []) {
      this.seenAt.set(target.id, seen);
      if (!sample) continue;
      let points = this.history.get(target.id);
      if (!points) {
        points = [];
        this.history.set(target.id, points);
      }
      const value = target.state === 'live' ? Number(target.bitrate_kbps) || 0 : 0;
      points.push({ t: now, v: value });
      const oldest = now - HISTORY_MS - 5000;
      while (points.length && points[0].t < oldest) points.shift();
    }
  }
}
