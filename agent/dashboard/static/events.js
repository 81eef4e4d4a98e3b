/**
 * The agent's event stream: the WebSocket `/api/v1/events`, kept open.
 *
 * The browser sends the session cookie and the page's own Origin with the handshake. The
 * first message is `hello` with the whole status; every message goes to `onEvent`. When the
 * socket closes, it is opened again after a growing delay (0.5 s doubling to 15 s, with
 * jitter), reset once a `hello` arrives. A handshake the agent refused looks the same as an
 * agent that is gone, so before each new attempt `checkSession` is asked; when it says the
 * session has ended the stream stops and the page shows the sign-in form.
 */

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;

export class EventStream {
  /**
   * @param {object} handlers
   * @param {(event: object) => void} handlers.onEvent
   * @param {(state: string, retryInMs?: number) => void} handlers.onState
   * @param {() => Promise<boolean>} handlers.checkSession  false: stop for good
   */
  constructor({ onEvent, onState, checkSession }) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.checkSession = checkSession;
    this.socket = null;
    this.timer = null;
    this.failures = 0;
    this.running = false;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.failures = 0;
    this.open();
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, 'page closed');
    this.onState('closed');
  }

  /** Connect again at once (after signing in, or when the person asks). */
  reconnectNow() {
    if (!this.running) return this.start();
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.socket) this.open();
  }

  open() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(`${scheme}//${location.host}/api/v1/events`);
    this.socket = socket;
    this.onState('connecting');
    socket.addEventListener('message', (message) => {
      if (this.socket !== socket) return;
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return; // not ours to understand; the next message will be
      }
      if (event && event.type === 'hello') {
        this.failures = 0;
        this.onState('open');
      }
      if (event && typeof event.type === 'string') this.onEvent(event);
    });
    socket.addEventListener('close', () => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.running) this.retry();
    });
  }

  retry() {
    const base = Math.min(FIRST_DELAY_MS * 2 ** this.failures, MAX_DELAY_MS);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.failures += 1;
    this.onState('reconnecting', delay);
    this.timer = setTimeout(async () => {
      this.timer = null;
      if (!this.running) return;
      let signedIn = true;
      try {
        signedIn = await this.checkSession();
      } catch {
        signedIn = true; // the agent is not answering at all: keep trying
      }
      if (!this.running) return;
      if (signedIn) this.open();
      else this.stop();
    }, delay);
  }
}
