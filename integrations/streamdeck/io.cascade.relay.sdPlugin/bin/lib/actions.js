'use strict';
/**
 * The keys' logic: what each action does when pressed, and what each key shows.
 *
 * `Controller` receives every Stream Deck event (`handle(message)`) and answers through an
 * injected `deck` (the commands of `streamdeck.js`: setTitle, setState, showOk, showAlert,
 * setGlobalSettings, sendToPropertyInspector), so it runs the same against Stream Deck or a
 * recorder. It keeps one `AgentLink` to the agent's events for all keys and re-draws a key
 * only when its face changed.
 *
 * Settings: the agent URL and token are global (entered once, kept by Stream Deck as the
 * plugin's global settings); each toggle key keeps its own `group` or `target` id. The
 * property inspector never talks to the agent (the agent refuses other web pages): it asks the
 * plugin with `sendToPlugin` and gets the agent's groups and targets back.
 */

const { AgentClient, AgentError, DEFAULT_AGENT_URL, normaliseAgentUrl } = require('./agent');
const { AgentLink } = require('./agent-link');
const { RelayState } = require('./relay-state');
const { groupFace, targetFace, allFace } = require('./faces');

const PLUGIN_UUID = 'io.cascade.relay';
const ACTIONS = {
  toggleGroup: `${PLUGIN_UUID}.toggle-group`,
  toggleTarget: `${PLUGIN_UUID}.toggle-target`,
  startAll: `${PLUGIN_UUID}.start-all`,
  stopAll: `${PLUGIN_UUID}.stop-all`,
};
const TWO_STATES = new Set([ACTIONS.toggleGroup, ACTIONS.toggleTarget]);
const ACTION_NAMES = {
  [ACTIONS.toggleGroup]: 'toggle group',
  [ACTIONS.toggleTarget]: 'toggle target',
  [ACTIONS.startAll]: 'start all',
  [ACTIONS.stopAll]: 'stop all',
};

class Controller {
  /**
   * @param {object} options
   * @param {object} options.deck  Stream Deck commands (see `StreamDeck` in streamdeck.js)
   * @param {import('./log').Log} options.log
   * @param {Function} [options.makeClient]  `(options) => AgentClient`
   * @param {Function} [options.makeLink]  `(client) => AgentLink`
   */
  constructor({ deck, log, makeClient = (o) => new AgentClient(o), makeLink = (c) => new AgentLink(c) }) {
    this.deck = deck;
    this.log = log;
    this.makeClient = makeClient;
    this.makeLink = makeLink;
    this.keys = new Map(); // context -> { action, settings, shown }
    this.relay = new RelayState();
    this.connection = null; // { agentUrl, token } once the global settings are read
    this.client = null;
    this.link = null;
    this.linkState = 'waiting';
    this.linkDetail = '';
  }

  /** One event from Stream Deck. The promise settles when its work is done (tests wait on it). */
  async handle(message) {
    const { event, context, action, payload = {} } = message;
    switch (event) {
      case 'didReceiveGlobalSettings':
        this.configure(payload.settings || {});
        break;
      case 'willAppear':
        this.keys.set(context, { action, settings: payload.settings || {}, shown: null });
        this.render(context);
        break;
      case 'willDisappear':
        this.keys.delete(context);
        break;
      case 'didReceiveSettings':
        this.key(context, action, payload).settings = payload.settings || {};
        this.render(context);
        break;
      case 'keyDown':
        await this.press(context, action, payload);
        break;
      case 'propertyInspectorDidAppear':
        await this.sendChoices(context, action);
        break;
      case 'sendToPlugin':
        await this.fromInspector(context, action, payload);
        break;
      default:
        break;
    }
  }

  /** Close the link (the plugin ends). */
  stop() {
    if (this.link) this.link.stop();
    this.link = null;
  }

  key(context, action, payload = {}) {
    let key = this.keys.get(context);
    if (!key) {
      key = { action, settings: payload.settings || {}, shown: null };
      this.keys.set(context, key);
    }
    return key;
  }

  // -- settings ---------------------------------------------------------------------------

  /** Use these global settings (`agentUrl`, `token`); a change reconnects. */
  configure(settings) {
    const agentUrl = String(settings.agentUrl || '').trim() || DEFAULT_AGENT_URL;
    const token = String(settings.token || '').trim();
    if (this.connection && this.connection.agentUrl === agentUrl && this.connection.token === token) {
      return;
    }
    this.stop();
    this.relay.clear();
    this.connection = { agentUrl, token };
    this.log.secret(token);
    try {
      this.client = this.makeClient({ url: agentUrl, token });
    } catch (err) {
      this.client = null;
      this.setLink('bad-url', err.message);
      return;
    }
    if (!token) {
      this.setLink('no-token', "no API token is set yet: paste the output of 'cascade token' in a key's settings");
      return;
    }
    const link = this.makeLink(this.client);
    this.link = link;
    link.on('status', (status) => {
      if (this.link !== link) return;
      this.relay.replace(status);
      if (this.linkState === 'online') this.renderAll();
    });
    link.on('event', (agentEvent) => {
      if (this.link === link && this.relay.apply(agentEvent)) this.renderAll();
    });
    link.on('link', ({ state, detail }) => {
      if (this.link === link) this.setLink(state, detail);
    });
    link.start();
  }

  setLink(state, detail) {
    if (state !== 'online') this.relay.clear();
    if (state !== this.linkState || detail !== this.linkDetail) this.log.info(detail);
    this.linkState = state;
    this.linkDetail = detail;
    this.renderAll();
  }

  // -- faces ------------------------------------------------------------------------------

  face(key) {
    const link = this.linkState;
    if (key.action === ACTIONS.toggleGroup) {
      const id = key.settings.group;
      return groupFace({ link, id, group: id ? this.relay.group(id) : undefined, label: this.relay.label(id) });
    }
    if (key.action === ACTIONS.toggleTarget) {
      const id = key.settings.target;
      return targetFace({ link, id, target: id ? this.relay.target(id) : undefined });
    }
    return allFace({ link });
  }

  render(context, { force = false } = {}) {
    const key = this.keys.get(context);
    if (!key) return;
    const face = this.face(key);
    const shown = key.shown;
    if (force || !shown || shown.title !== face.title) this.deck.setTitle(context, face.title);
    if (TWO_STATES.has(key.action) && (force || !shown || shown.state !== face.state)) {
      this.deck.setState(context, face.state);
    }
    key.shown = face;
  }

  renderAll() {
    for (const context of this.keys.keys()) this.render(context);
  }

  // -- pressing a key ---------------------------------------------------------------------

  async press(context, action, payload) {
    const key = this.key(context, action, payload);
    if (payload.settings) key.settings = payload.settings; // the press carries the latest
    const name = ACTION_NAMES[key.action] || key.action;
    let id = '';
    try {
      if (!this.client) {
        throw new AgentError('setup', this.linkDetail || 'the plugin has not read its settings yet');
      }
      switch (key.action) {
        case ACTIONS.toggleGroup: {
          id = required(key.settings.group, 'group');
          this.relay.putGroup(await this.client.toggleGroup(id));
          break;
        }
        case ACTIONS.toggleTarget: {
          id = required(key.settings.target, 'target');
          this.relay.putTarget(await this.client.toggleTarget(id));
          break;
        }
        case ACTIONS.startAll:
          this.relay.replace(await this.client.startAll());
          this.deck.showOk(context);
          break;
        case ACTIONS.stopAll:
          this.relay.replace(await this.client.stopAll());
          this.deck.showOk(context);
          break;
        default:
          throw new AgentError('setup', `this plugin has no action ${key.action}`);
      }
      this.renderAll();
    } catch (err) {
      this.log.info(`${name}${id ? ` '${id}'` : ''} failed: ${err.message}`);
      this.deck.showAlert(context);
      this.render(context, { force: true });
    }
  }

  // -- the property inspector -------------------------------------------------------------

  async fromInspector(context, action, payload) {
    if (payload.request === 'connect') {
      let agentUrl;
      try {
        agentUrl = normaliseAgentUrl(payload.agentUrl);
      } catch (err) {
        this.deck.sendToPropertyInspector(context, action, { ...this.choicesBase(), error: err.message });
        return;
      }
      const typed = String(payload.token || '').trim();
      const token = typed || (this.connection ? this.connection.token : '');
      const settings = { agentUrl, token };
      this.deck.setGlobalSettings(settings);
      this.configure(settings);
    }
    if (payload.request === 'connect' || payload.request === 'refresh') {
      await this.sendChoices(context, action);
    }
  }

  choicesBase() {
    return {
      type: 'choices',
      agentUrl: this.connection ? this.connection.agentUrl : DEFAULT_AGENT_URL,
      hasToken: Boolean(this.connection && this.connection.token),
      groups: [],
      targets: [],
      version: null,
      error: null,
    };
  }

  /** The agent's groups and targets for the inspector's lists (never the token itself). */
  async sendChoices(context, action) {
    const choices = this.choicesBase();
    try {
      if (!this.client) throw new AgentError('setup', this.linkDetail || 'not set up yet');
      const status = await this.client.status();
      choices.version = status.version || null;
      for (const group of status.groups || []) {
        choices.groups.push({ id: group.id, name: group.name || group.id, state: group.state });
        for (const target of group.targets || []) {
          choices.targets.push({ id: target.id, group: group.id, state: target.state });
        }
      }
    } catch (err) {
      choices.error = err.message;
    }
    this.deck.sendToPropertyInspector(context, action, choices);
  }
}

function required(id, what) {
  if (!id) throw new AgentError('setup', `no ${what} is chosen: pick one in the key's settings`);
  return id;
}

module.exports = { Controller, ACTIONS, PLUGIN_UUID };
