'use strict';
/**
 * The live link to the agent's event stream (`/api/v1/events`), kept open for the keys.
 *
 * Emits:
 *   `status`  the full status from the agent's first `hello` message (after every connect)
 *   `event`   each event after it (`group.state`, `target.state`, `stats`, ...)
 *   `link`    the link's own state changed: `{ state, detail }` where state is
 *             'connecting' (first try), 'online', 'offline' (nothing answers; retrying) or
 *             'unauthorized' (the agent refused the token; retrying, since it can be fixed)
 *
 * When the agent goes away the link tries again after a delay that doubles from `initialMs`
 * up to `maxMs` (with a little jitter), and starts from `initialMs` again once a hello arrived.
 */

const { EventEmitter } = require('node:events');
const websocket = require('./websocket');
const { describeFailure } = require('./agent');

const BACKOFF = { initialMs: 250, maxMs: 5000, jitter: 0.2 };

class AgentLink extends EventEmitter {
  /**
   * @param {import('./agent').AgentClient} client  where to connect and with which token
   * @param {{backoff?: object, connect?: Function}} options  `connect` replaces the WebSocket
   *        opener (tests); `backoff` the retry delays
   */
  constructor(client, { backoff = BACKOFF, connect = websocket.connect } = {}) {
    super();
    this.client = client;
    this.backoff = { ...BACKOFF, ...backoff };
    this.connect = connect;
    this.state = 'idle';
    this.detail = '';
    this.delayMs = this.backoff.initialMs;
    this.socket = null;
    this.timer = null;
    this.stopped = true;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this._set('connecting', `connecting to ${this.client.url}`);
    this._open();
  }

  /** Close the link for good (settings changed, or the plugin ends). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.removeAllListeners('close');
      socket.on('error', () => {});
      socket.close(1000, 'plugin settings changed');
    }
    this.state = 'idle';
  }

  _set(state, detail) {
    if (state === this.state && detail === this.detail) return;
    this.state = state;
    this.detail = detail;
    this.emit('link', { state, detail });
  }

  async _open() {
    let socket;
    try {
      socket = await this.connect(this.client.eventsUrl, {
        headers: this.client.headers,
        timeoutMs: this.client.timeoutMs,
      });
    } catch (err) {
      if (this.stopped) return;
      if (err instanceof websocket.HandshakeError && err.status === 401) {
        // A wrong token does not fix itself, and the agent slows down repeated wrong tokens:
        // try again only now and then (new settings reconnect at once anyway).
        this.delayMs = this.backoff.maxMs;
        this._retry('unauthorized', "the agent refused the API token; 'cascade token' prints the right one");
      } else if (err instanceof websocket.HandshakeError) {
        this._retry('offline', `the agent refused the event stream (HTTP ${err.status})`);
      } else {
        this._retry('offline', `Cascade is not reachable at ${this.client.url} (${describeFailure({ cause: err })})`);
      }
      return;
    }
    if (this.stopped) {
      socket.on('error', () => {});
      socket.close(1000, 'plugin settings changed');
      return;
    }
    this.socket = socket;
    let greeted = false;
    socket.on('error', () => {}); // a broken socket also closes; the close decides
    socket.on('message', (text) => {
      let message;
      try {
        message = JSON.parse(text);
      } catch {
        return;
      }
      if (message.type === 'hello') {
        greeted = true;
        this.delayMs = this.backoff.initialMs;
        // The status first, so whoever draws on 'online' already has it.
        this.emit('status', message.status || {});
        this._set('online', `connected to Cascade ${message.version || ''} at ${this.client.url}`);
      } else if (greeted) {
        this.emit('event', message);
      }
    });
    socket.on('close', ({ code }) => {
      if (this.socket === socket) this.socket = null;
      if (this.stopped) return;
      this._retry('offline', `the agent at ${this.client.url} closed the event stream (${code})`);
    });
  }

  _retry(state, detail) {
    const jitter = 1 + (Math.random() * 2 - 1) * this.backoff.jitter;
    const wait = Math.round(this.delayMs * jitter);
    this.delayMs = Math.min(this.delayMs * 2, this.backoff.maxMs);
    this._set(state, detail);
    this.emit('retry', { inMs: wait });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.stopped) this._open();
    }, wait);
  }
}

module.exports = { AgentLink, BACKOFF };
