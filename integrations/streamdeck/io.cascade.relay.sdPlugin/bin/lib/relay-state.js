'use strict';
/**
 * What the agent last said about its groups and targets: filled from the `hello` status and
 * kept current by `group.state`, `target.state` and `stats` events, or by an action's answer.
 * Only what a key shows is kept: ids, names, states and whether a target is switched on.
 */

class RelayState {
  constructor() {
    this.groups = new Map(); // id -> { id, name, state, targets: Map id -> target }
    this.names = new Map(); // group id -> name, kept while the agent is away
  }

  /** Forget the states (the link went down: none is known to be true any more); names stay. */
  clear() {
    this.groups.clear();
  }

  /** A group's name as the agent last gave it, else its id. */
  label(id) {
    return this.names.get(id) || id;
  }

  /** Replace everything with a full status (`/status`, `hello`, start-all, stop-all). */
  replace(status) {
    this.groups.clear();
    for (const group of (status && status.groups) || []) this.putGroup(group);
  }

  /** One group as the API shows it (`/groups/{id}`, a `stats` event, a toggle's answer). */
  putGroup(view) {
    if (!view || !view.id) return;
    const old = this.groups.get(view.id);
    const targets = new Map();
    for (const t of view.targets || (old ? [...old.targets.values()] : [])) {
      targets.set(t.id, { id: t.id, group: view.id, state: t.state, enabled: t.enabled !== false });
    }
    const name = view.name || (old && old.name) || view.id;
    this.names.set(view.id, name);
    this.groups.set(view.id, {
      id: view.id,
      name,
      state: view.state || (old && old.state) || 'idle',
      targets,
    });
  }

  /** One target as the API shows it (a target toggle's answer). */
  putTarget(view) {
    if (!view || !view.id) return;
    const group = this.groups.get(view.group);
    if (!group) return;
    group.targets.set(view.id, {
      id: view.id,
      group: view.group,
      state: view.state,
      enabled: view.enabled !== false,
    });
    if (view.group_state) group.state = view.group_state;
  }

  /** Apply one agent event; true when something a key shows may have changed. */
  apply(event) {
    switch (event && event.type) {
      case 'group.state': {
        const group = this.groups.get(event.group);
        if (group) group.state = event.state;
        // A group added since the hello: known from now on.
        else this.putGroup({ id: event.group, name: this.names.get(event.group), state: event.state, targets: [] });
        return true;
      }
      case 'target.state': {
        const group = this.groups.get(event.group);
        if (!group) return false;
        group.targets.set(event.target, {
          id: event.target,
          group: event.group,
          state: event.state,
          // 'disabled' is the only state of a target that is switched off.
          enabled: event.state !== 'disabled',
        });
        return true;
      }
      case 'stats':
        this.putGroup(event.stats);
        return true;
      default:
        return false;
    }
  }

  group(id) {
    return this.groups.get(id);
  }

  target(id) {
    for (const group of this.groups.values()) {
      const found = group.targets.get(id);
      if (found) return found;
    }
    return undefined;
  }
}

module.exports = { RelayState };
