'use strict';
/**
 * Test helpers for the Stream Deck plugin's `node --test` suite.
 *
 * The suite runs against a real Cascade agent, named by two environment variables (the pytest
 * test tests/integrations/test_streamdeck.py starts one and sets them):
 *
 *   CASCADE_AGENT_URL    e.g. http://127.0.0.1:47830
 *   CASCADE_AGENT_TOKEN  its API token
 *
 * Without them every test fails (never skips). The agent's profile must have group `main`
 * (named "Main", target `rec`) and group `backup` (targets `rec2` and `site`), and a publisher
 * streaming into its ingest, so that a started group really goes live.
 *
 * Also here: `FakeStreamDeck`, a Stream Deck stand-in (a WebSocket server on `http`'s
 * 'upgrade', with its own framing code, independent of the plugin's) that records every
 * command the plugin sends and fires events at it; `startPlugin`, which runs the real
 * bin/plugin.js the way Stream Deck does; and `AgentProxy`, a forwarder to the agent that
 * can be switched off and on to play an agent going away and coming back.
 */

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');

const PLUGIN_DIR = path.resolve(__dirname, '..', 'io.cascade.relay.sdPlugin');
const PLUGIN_JS = path.join(PLUGIN_DIR, 'bin', 'plugin.js');
const PLUGIN_UUID = 'io.cascade.relay';
const ACTION = {
  group: `${PLUGIN_UUID}.toggle-group`,
  target: `${PLUGIN_UUID}.toggle-target`,
  startAll: `${PLUGIN_UUID}.start-all`,
  stopAll: `${PLUGIN_UUID}.stop-all`,
};
const WAIT_MS = 15000;

/** The agent under test, from the environment; an assertion error when it is not given. */
function agentEnv() {
  const url = process.env.CASCADE_AGENT_URL;
  const token = process.env.CASCADE_AGENT_TOKEN;
  assert.ok(
    url && token,
    'CASCADE_AGENT_URL and CASCADE_AGENT_TOKEN must name a running Cascade agent ' +
      '(python -m pytest tests/integrations/test_streamdeck.py starts one and sets them)',
  );
  return { url: url.replace(/\/+$/, ''), token };
}

/** A call to the agent's API, for arranging and checking its state (not through the plugin). */
async function api(method, apiPath) {
  const { url, token } = agentEnv();
  const answer = await fetch(`${url}/api/v1${apiPath}`, {
    method,
    headers: { Authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(10000),
  });
  const body = await answer.json();
  assert.ok(answer.ok, `${method} ${apiPath} answered ${answer.status}: ${JSON.stringify(body)}`);
  return body;
}

/** Poll `check` until it returns something truthy; fail naming `what` after `timeoutMs`. */
async function waitFor(what, check, { timeoutMs = WAIT_MS, intervalMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) assert.fail(`gave up after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** An address where nothing listens: a port bound and released again. */
async function deadUrl() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

// -- a Stream Deck stand-in -------------------------------------------------------------------

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** A server frame: never masked (RFC 6455 section 5.1). */
function serverFrame(opcode, payload, fin = true) {
  const n = payload.length;
  let header;
  if (n < 126) header = Buffer.from([0, n]);
  else if (n < 65536) {
    header = Buffer.alloc(4);
    header[1] = 126;
    header.writeUInt16BE(n, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(n), 2);
  }
  header[0] = (fin ? 0x80 : 0) | opcode;
  return Buffer.concat([header, payload]);
}

/**
 * One WebSocket server with one client at a time. Records every text message (parsed as JSON
 * when it is JSON), pongs, whether every client frame was masked, and close frames.
 */
class FakeWebSocketServer {
  constructor() {
    this.server = http.createServer((req, res) => {
      res.writeHead(426, { 'Content-Type': 'text/plain' });
      res.end('WebSocket only');
    });
    this.server.on('upgrade', (req, socket, head) => this._accept(req, socket, head));
    this.socket = null;
    this.received = [];
    this.pongs = [];
    this.unmaskedFrames = 0;
    this.closeFrames = [];
    this.requests = [];
    this.listeners = new Set();
    this.fragments = null;
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = this.server.address().port;
    return this;
  }

  get url() {
    return `ws://127.0.0.1:${this.port}`;
  }

  _accept(req, socket, head) {
    this.requests.push({ url: req.url, headers: req.headers });
    const accept = crypto.createHash('sha1').update(req.headers['sec-websocket-key'] + GUID).digest('base64');
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    this.socket = socket;
    let buffer = Buffer.from(head || []);
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (buffer.length < 2) return;
        const fin = (buffer[0] & 0x80) !== 0;
        const opcode = buffer[0] & 0x0f;
        const masked = (buffer[1] & 0x80) !== 0;
        let n = buffer[1] & 0x7f;
        let offset = 2;
        if (n === 126) {
          if (buffer.length < 4) return;
          n = buffer.readUInt16BE(2);
          offset = 4;
        } else if (n === 127) {
          if (buffer.length < 10) return;
          n = Number(buffer.readBigUInt64BE(2));
          offset = 10;
        }
        const need = offset + (masked ? 4 : 0) + n;
        if (buffer.length < need) return;
        const key = masked ? buffer.subarray(offset, offset + 4) : null;
        const payload = Buffer.from(buffer.subarray(need - n, need));
        if (key) for (let i = 0; i < n; i += 1) payload[i] ^= key[i & 3];
        else this.unmaskedFrames += 1;
        buffer = buffer.subarray(need);
        this._frame(fin, opcode, payload);
      }
    });
  }

  _frame(fin, opcode, payload) {
    if (opcode === 0x8) {
      this.closeFrames.push(payload.length >= 2 ? payload.readUInt16BE(0) : null);
      if (this.socket) this.socket.end(serverFrame(0x8, payload.subarray(0, 2)));
      return;
    }
    if (opcode === 0xa) {
      this.pongs.push(payload.toString('utf8'));
      this._notify();
      return;
    }
    if (opcode === 0x9) {
      this.socket.write(serverFrame(0xa, payload));
      return;
    }
    if (opcode === 0x1 || opcode === 0x0) {
      this.fragments = opcode === 0x1 ? [payload] : [...(this.fragments || []), payload];
      if (!fin) return;
      const text = Buffer.concat(this.fragments).toString('utf8');
      this.fragments = null;
      let message = text;
      try {
        message = JSON.parse(text);
      } catch {
        // kept as text
      }
      this.received.push(message);
      this.onMessage(message);
      this._notify();
    }
  }

  /** Called for each message as it arrives (before anyone waiting is told). */
  onMessage() {}

  _notify() {
    for (const listener of [...this.listeners]) listener();
  }

  /** Resolve with the first recorded message for which `match` is true (waiting for it). */
  waitMessage(what, match, { timeoutMs = WAIT_MS, from = 0 } = {}) {
    return new Promise((resolve, reject) => {
      const look = () => {
        const found = this.received.slice(from).find(match);
        if (found === undefined) return false;
        clearTimeout(timer);
        this.listeners.delete(look);
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        this.listeners.delete(look);
        reject(new Error(`gave up after ${timeoutMs} ms waiting for ${what}; got:\n${this.dump()}`));
      }, timeoutMs);
      if (!look()) this.listeners.add(look);
    });
  }

  dump(last = 30) {
    return this.received
      .slice(-last)
      .map((m) => JSON.stringify(m))
      .join('\n');
  }

  /** Send a text message, in `fragments` frames, with a ping between the first two if asked. */
  send(message, { fragments = 1, pingInside = null } = {}) {
    const data = Buffer.from(typeof message === 'string' ? message : JSON.stringify(message), 'utf8');
    if (fragments <= 1) {
      this.socket.write(serverFrame(0x1, data));
      return;
    }
    const step = Math.ceil(data.length / fragments);
    for (let i = 0; i < fragments; i += 1) {
      const part = data.subarray(i * step, Math.min(data.length, (i + 1) * step));
      this.socket.write(serverFrame(i === 0 ? 0x1 : 0x0, part, i === fragments - 1));
      if (i === 0 && pingInside !== null) this.socket.write(serverFrame(0x9, Buffer.from(pingInside)));
    }
  }

  ping(text) {
    this.socket.write(serverFrame(0x9, Buffer.from(text)));
  }

  /** Close the connection the polite way (a close frame, then the socket ends). */
  closeClient(code = 1000) {
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code, 0);
    if (this.socket) this.socket.write(serverFrame(0x8, payload));
  }

  async stop() {
    if (this.socket) this.socket.destroy();
    await new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Stream Deck as the plugin sees it: registration, global settings kept and answered, and
 * helpers to fire key events and read back what the plugin drew on each key.
 */
class FakeStreamDeck extends FakeWebSocketServer {
  constructor({ globalSettings = {} } = {}) {
    super();
    this.globalSettings = { ...globalSettings };
  }

  /** Stream Deck keeps the global settings and answers `getGlobalSettings` with them. */
  onMessage(message) {
    if (message.event === 'getGlobalSettings') {
      this.send({ event: 'didReceiveGlobalSettings', payload: { settings: this.globalSettings } });
    } else if (message.event === 'setGlobalSettings') {
      this.globalSettings = { ...message.payload };
    }
  }

  commands(event, context) {
    return this.received.filter((m) => m.event === event && (context === undefined || m.context === context));
  }

  /** What the plugin last set on a key: `{title, state}` (title undefined: the person's own). */
  face(context) {
    const titles = this.commands('setTitle', context);
    const states = this.commands('setState', context);
    return {
      title: titles.length ? titles[titles.length - 1].payload.title : null,
      state: states.length ? states[states.length - 1].payload.state : null,
    };
  }

  /** Wait until the key's last title (and state, if given) are these. */
  async waitFace(context, title, state, options) {
    const matches = () => {
      const face = this.face(context);
      return face.title === title && (state === undefined || face.state === state);
    };
    await new Promise((resolve, reject) => {
      const timeoutMs = (options && options.timeoutMs) || WAIT_MS;
      const look = () => {
        if (!matches()) return false;
        clearTimeout(timer);
        this.listeners.delete(look);
        resolve();
        return true;
      };
      const timer = setTimeout(() => {
        this.listeners.delete(look);
        const face = this.face(context);
        reject(
          new Error(
            `key ${context}: wanted ${JSON.stringify({ title, state })}, ` +
              `it shows ${JSON.stringify(face)}; last commands:\n${this.dump()}`,
          ),
        );
      }, timeoutMs);
      if (!look()) this.listeners.add(look);
    });
  }

  /** Wait for a command sent to this key after `from` (an index into `received`). */
  waitCommand(event, context, from = 0, options) {
    return this.waitMessage(`${event} on ${context}`, (m) => m.event === event && m.context === context, {
      ...options,
      from,
    });
  }

  appear(context, action, settings = {}) {
    this.send({
      action,
      event: 'willAppear',
      context,
      device: 'test-device',
      payload: { settings, coordinates: { column: 0, row: 0 }, controller: 'Keypad', state: 0, isInMultiAction: false },
    });
  }

  disappear(context, action) {
    this.send({ action, event: 'willDisappear', context, device: 'test-device', payload: { settings: {} } });
  }

  press(context, action, settings = {}) {
    const payload = { settings, coordinates: { column: 0, row: 0 }, state: 0, isInMultiAction: false };
    this.send({ action, event: 'keyDown', context, device: 'test-device', payload });
    this.send({ action, event: 'keyUp', context, device: 'test-device', payload });
  }

  settings(context, action, settings) {
    this.send({
      action,
      event: 'didReceiveSettings',
      context,
      device: 'test-device',
      payload: { settings, coordinates: { column: 0, row: 0 }, isInMultiAction: false },
    });
  }

  /** A message from the key's property inspector. */
  toPlugin(context, action, payload) {
    this.send({ action, event: 'sendToPlugin', context, payload });
  }
}

/**
 * Run bin/plugin.js the way Stream Deck does, connected to `deck`. Resolves once the plugin
 * registered. `output()` is everything it wrote to stdout and stderr.
 */
async function startPlugin(deck) {
  const info = {
    application: { font: 'sans', language: 'en', platform: 'linux', platformVersion: '1', version: '6.5.0' },
    plugin: { uuid: PLUGIN_UUID, version: '0.1.0.0' },
    devicePixelRatio: 1,
    colors: {},
    devices: [{ id: 'test-device', name: 'Test', size: { columns: 5, rows: 3 }, type: 0 }],
  };
  const registrationUuid = crypto.randomBytes(16).toString('hex').toUpperCase();
  const from = deck.received.length;
  const child = spawn(
    process.execPath,
    [PLUGIN_JS, '-port', String(deck.port), '-pluginUUID', registrationUuid, '-registerEvent', 'registerPlugin', '-info', JSON.stringify(info)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (c) => {
    output += c;
  });
  child.stderr.on('data', (c) => {
    output += c;
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const registration = await Promise.race([
    deck.waitMessage('the plugin to register', (m) => m.event === 'registerPlugin', { from }),
    exited.then((how) => {
      throw new Error(`the plugin exited (${JSON.stringify(how)}) before registering:\n${output}`);
    }),
  ]);
  return {
    child,
    registration,
    registrationUuid,
    exited,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

// -- an agent that can go away ----------------------------------------------------------------

/**
 * Forwards HTTP requests and WebSocket upgrades to the agent, rewriting `Host` to the agent's
 * own (the agent refuses any other). `stop()` drops every connection and stops listening;
 * `start()` listens again on the same port.
 */
class AgentProxy {
  constructor(agentUrl) {
    this.agent = new URL(agentUrl);
    this.port = 0;
    this.sockets = new Set();
    this.server = null;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    const server = http.createServer((req, res) => {
      const upstream = http.request(
        {
          host: this.agent.hostname,
          port: this.agent.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: this.agent.host },
        },
        (answer) => {
          res.writeHead(answer.statusCode, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    server.on('upgrade', (req, socket, head) => {
      const upstream = net.connect(Number(this.agent.port), this.agent.hostname, () => {
        const lines = [`${req.method} ${req.url} HTTP/1.1`];
        for (let i = 0; i < req.rawHeaders.length; i += 2) {
          const name = req.rawHeaders[i];
          lines.push(`${name}: ${name.toLowerCase() === 'host' ? this.agent.host : req.rawHeaders[i + 1]}`);
        }
        upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
        if (head && head.length) upstream.write(head);
        upstream.pipe(socket);
        socket.pipe(upstream);
      });
      this.sockets.add(upstream);
      upstream.on('close', () => {
        this.sockets.delete(upstream);
        socket.destroy();
      });
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
      socket.on('close', () => upstream.destroy());
    });
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', resolve);
    });
    this.port = server.address().port;
    this.server = server;
    return this;
  }

  async stop() {
    const server = this.server;
    this.server = null;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    if (server) await new Promise((resolve) => server.close(() => resolve()));
  }
}

module.exports = {
  ACTION,
  AgentProxy,
  FakeStreamDeck,
  FakeWebSocketServer,
  PLUGIN_DIR,
  PLUGIN_JS,
  PLUGIN_UUID,
  WAIT_MS,
  agentEnv,
  api,
  deadUrl,
  startPlugin,
  waitFor,
};
