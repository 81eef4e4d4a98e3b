'use strict';
/**
 * A small RFC 6455 WebSocket client on Node's own `http`/`https`, for Node 18 and 20 (where a
 * global WebSocket is missing or behind a flag). The plugin uses it twice: for Stream Deck's
 * connection and for the agent's event stream.
 *
 * What it does: the opening handshake (key and accept check), masked text frames out,
 * reassembly of fragmented messages in, answers to pings, and the closing handshake. No
 * extensions are offered, so frames never carry compressed data.
 *
 *     const ws = await connect('ws://127.0.0.1:47830/api/v1/events', { headers });
 *     ws.on('message', (text) => ...);
 *     ws.on('close', ({ code, reason }) => ...);
 *     ws.send('{"event": "..."}');
 *     ws.close();
 *
 * Errors: `connect` rejects with a `HandshakeError` when the server answers the upgrade with
 * a plain HTTP response (`status` holds it: 401 for a wrong token), and with the socket's
 * own error (`ECONNREFUSED`, ...) when nothing answers.
 */

const crypto = require('node:crypto');
const { EventEmitter } = require('node:events');
const http = require('node:http');
const https = require('node:https');

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OP = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa };
/** The agent's hello carries the whole status; a few MiB is far above any real profile. */
const DEFAULT_MAX_MESSAGE = 8 * 1024 * 1024;

/** The server refused the upgrade with an ordinary HTTP answer. */
class HandshakeError extends Error {
  constructor(status, body) {
    super(`the WebSocket upgrade was refused with HTTP ${status}`);
    this.name = 'HandshakeError';
    this.status = status;
    this.body = body;
  }
}

/** Encode one frame; `mask` is true for frames a client sends (RFC 6455 section 5.3). */
function encodeFrame(opcode, payload, { mask = true, fin = true } = {}) {
  const length = payload.length;
  let header;
  if (length < 126) {
    header = Buffer.alloc(2);
    header[1] = length;
  } else if (length < 65536) {
    header = Buffer.alloc(4);
    header[1] = 126;
    header.writeUInt16BE(length, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  header[0] = (fin ? 0x80 : 0) | opcode;
  if (!mask) return Buffer.concat([header, payload]);
  header[1] |= 0x80;
  const key = crypto.randomBytes(4);
  const body = Buffer.alloc(length);
  for (let i = 0; i < length; i += 1) body[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([header, key, body]);
}

class ProtocolError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** One open connection (the client side). Emits `message` (text), `binary`, `close`, `error`. */
class WebSocketConnection extends EventEmitter {
  constructor(socket, head, { maxMessageBytes = DEFAULT_MAX_MESSAGE } = {}) {
    super();
    this.socket = socket;
    this.maxMessageBytes = maxMessageBytes;
    // Bytes that came with the upgrade answer go first; parsed once listeners are attached.
    this.buffer = head && head.length ? Buffer.from(head) : Buffer.alloc(0);
    this.fragments = null; // { opcode, parts, size } while a fragmented message arrives
    this.closeSent = false;
    this.closed = false;
    this.closeInfo = { code: 1006, reason: '' };
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this._receive(chunk));
    socket.on('error', (err) => this._error(err));
    socket.on('close', () => this._finish());
    if (this.buffer.length) setImmediate(() => this._receive(Buffer.alloc(0)));
  }

  get isOpen() {
    return !this.closed && !this.closeSent;
  }

  /** Send one text message. Returns false once the connection is closing. */
  send(text) {
    if (!this.isOpen) return false;
    this.socket.write(encodeFrame(OP.text, Buffer.from(String(text), 'utf8')));
    return true;
  }

  /** Start the closing handshake; the socket ends when the server answers (or after 1 s). */
  close(code = 1000, reason = '') {
    if (this.closed) return;
    if (!this.closeSent) {
      this.closeSent = true;
      const why = Buffer.from(reason, 'utf8');
      const payload = Buffer.alloc(2 + why.length);
      payload.writeUInt16BE(code, 0);
      why.copy(payload, 2);
      this.socket.write(encodeFrame(OP.close, payload));
      this.closeInfo = { code, reason };
    }
    const timer = setTimeout(() => this.socket.destroy(), 1000);
    timer.unref();
  }

  /** Drop the connection at once, without a closing handshake. */
  terminate() {
    this.socket.destroy();
  }

  _finish() {
    if (this.closed) return;
    this.closed = true;
    this.emit('close', this.closeInfo);
  }

  /** An `error` event only for those who listen: a closed socket also emits `close`. */
  _error(err) {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  _fail(code, message) {
    this._error(new ProtocolError(code, message));
    this.close(code, message.slice(0, 100));
  }

  _receive(chunk) {
    if (chunk.length) this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    try {
      while (!this.closed) {
        const frame = this._takeFrame();
        if (frame === null) break;
        this._handle(frame);
      }
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.buffer = Buffer.alloc(0);
        this._fail(err.code, err.message);
      } else {
        throw err;
      }
    }
  }

  /** The next whole frame from the buffer, or null when more bytes are needed. */
  _takeFrame() {
    const buf = this.buffer;
    if (buf.length < 2) return null;
    const fin = (buf[0] & 0x80) !== 0;
    if (buf[0] & 0x70) throw new ProtocolError(1002, 'a frame used a reserved bit');
    const opcode = buf[0] & 0x0f;
    const masked = (buf[1] & 0x80) !== 0;
    let length = buf[1] & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (buf.length < 4) return null;
      length = buf.readUInt16BE(2);
      offset = 4;
    } else if (length === 127) {
      if (buf.length < 10) return null;
      const big = buf.readBigUInt64BE(2);
      if (big > BigInt(this.maxMessageBytes)) throw new ProtocolError(1009, 'a frame is too large');
      length = Number(big);
      offset = 10;
    }
    if (length > this.maxMessageBytes) throw new ProtocolError(1009, 'a frame is too large');
    const keyBytes = masked ? 4 : 0;
    if (buf.length < offset + keyBytes + length) return null;
    let payload = buf.subarray(offset + keyBytes, offset + keyBytes + length);
    if (masked) {
      // A server must not mask (section 5.1); tolerate it rather than drop a usable peer.
      const key = buf.subarray(offset, offset + 4);
      payload = Buffer.from(payload);
      for (let i = 0; i < payload.length; i += 1) payload[i] ^= key[i & 3];
    }
    this.buffer = buf.subarray(offset + keyBytes + length);
    return { fin, opcode, payload };
  }

  _handle({ fin, opcode, payload }) {
    if (opcode >= 0x8) {
      if (!fin || payload.length > 125) throw new ProtocolError(1002, 'a bad control frame');
      this._control(opcode, payload);
      return;
    }
    if (opcode === OP.continuation) {
      if (this.fragments === null) throw new ProtocolError(1002, 'a continuation out of place');
      this.fragments.parts.push(payload);
      this.fragments.size += payload.length;
      if (this.fragments.size > this.maxMessageBytes) {
        throw new ProtocolError(1009, 'a message is too large');
      }
      if (!fin) return;
      const { opcode: first, parts } = this.fragments;
      this.fragments = null;
      this._deliver(first, Buffer.concat(parts));
      return;
    }
    if (opcode !== OP.text && opcode !== OP.binary) {
      throw new ProtocolError(1002, `an unknown opcode ${opcode}`);
    }
    if (this.fragments !== null) throw new ProtocolError(1002, 'a new message inside a fragmented one');
    if (fin) {
      this._deliver(opcode, payload);
    } else {
      this.fragments = { opcode, parts: [payload], size: payload.length };
    }
  }

  _control(opcode, payload) {
    if (opcode === OP.ping) {
      if (!this.closeSent) this.socket.write(encodeFrame(OP.pong, payload));
    } else if (opcode === OP.close) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      const reason = payload.length > 2 ? payload.subarray(2).toString('utf8') : '';
      if (!this.closeSent) {
        this.closeSent = true;
        this.closeInfo = { code, reason };
        const echo = payload.length >= 2 ? payload.subarray(0, 2) : Buffer.alloc(0);
        this.socket.write(encodeFrame(OP.close, echo));
      } else {
        this.closeInfo = { code, reason };
      }
      this.socket.end();
    } else if (opcode !== OP.pong) {
      throw new ProtocolError(1002, `an unknown control opcode ${opcode}`);
    }
  }

  _deliver(opcode, payload) {
    if (opcode === OP.binary) {
      this.emit('binary', payload);
      return;
    }
    let text;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(payload);
    } catch {
      throw new ProtocolError(1007, 'a text message is not valid UTF-8');
    }
    this.emit('message', text);
  }
}

/**
 * Open a WebSocket to `url` (`ws:`, `wss:`, or `http:`/`https:` for the same host).
 * Options: `headers` (sent with the upgrade request), `timeoutMs` (default 5000).
 */
function connect(url, { headers = {}, timeoutMs = 5000, maxMessageBytes } = {}) {
  const target = new URL(url);
  const secure = target.protocol === 'wss:' || target.protocol === 'https:';
  if (!secure && target.protocol !== 'ws:' && target.protocol !== 'http:') {
    return Promise.reject(new Error(`not a WebSocket address: ${target.protocol}`));
  }
  const key = crypto.randomBytes(16).toString('base64');
  const expected = crypto.createHash('sha1').update(key + GUID).digest('base64');
  const transport = secure ? https : http;
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (err, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(value);
    };
    const req = transport.request({
      protocol: secure ? 'https:' : 'http:',
      hostname: target.hostname.replace(/^\[|\]$/g, ''),
      port: target.port || (secure ? 443 : 80),
      path: `${target.pathname}${target.search}`,
      method: 'GET',
      agent: false,
      headers: {
        ...headers,
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': key,
      },
    });
    const timer = setTimeout(() => {
      const err = new Error(`no WebSocket answer from ${target.host} within ${timeoutMs} ms`);
      err.code = 'ETIMEDOUT';
      req.destroy(err);
    }, timeoutMs);
    req.on('error', (err) => done(err));
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => done(new HandshakeError(res.statusCode, Buffer.concat(chunks).toString('utf8'))));
      res.on('error', (err) => done(err));
    });
    req.on('upgrade', (res, socket, head) => {
      if (res.statusCode !== 101 || res.headers['sec-websocket-accept'] !== expected) {
        socket.destroy();
        done(new HandshakeError(res.statusCode, 'the server answered with a wrong accept key'));
        return;
      }
      if (res.headers['sec-websocket-extensions']) {
        socket.destroy();
        done(new HandshakeError(res.statusCode, 'the server chose an extension nobody asked for'));
        return;
      }
      done(null, new WebSocketConnection(socket, head, { maxMessageBytes }));
    });
    req.end();
  });
}

module.exports = { connect, encodeFrame, HandshakeError, WebSocketConnection, OP };
