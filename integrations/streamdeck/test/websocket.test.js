'use strict';
/**
 * The plugin's own WebSocket client (bin/lib/websocket.js): against a test server with its own
 * framing code, and against the running agent's event stream (aiohttp on the other end).
 */

const assert = require('node:assert/strict');
const { after, before, describe, test } = require('node:test');

const { connect, HandshakeError } = require('../io.cascade.relay.sdPlugin/bin/lib/websocket');
const { FakeWebSocketServer, agentEnv, deadUrl, waitFor } = require('./helpers');

function nextMessage(ws) {
  return new Promise((resolve) => ws.once('message', resolve));
}

describe('the WebSocket client against a test server', () => {
  let server;
  let ws;

  before(async () => {
    server = await new FakeWebSocketServer().start();
    ws = await connect(`${server.url}/some/path?x=1`, { headers: { 'X-Test': 'yes' } });
  });

  after(async () => {
    ws.terminate();
    await server.stop();
  });

  test('the handshake asks for the path and headers given, and offers no extension', () => {
    const [request] = server.requests;
    assert.equal(request.url, '/some/path?x=1');
    assert.equal(request.headers['x-test'], 'yes');
    assert.equal(request.headers['sec-websocket-version'], '13');
    assert.equal(request.headers['sec-websocket-extensions'], undefined);
  });

  test('text sent by the client arrives whole, in masked frames, at every length encoding', async () => {
    const texts = ['short', 'é'.repeat(200), 'x'.repeat(70000)]; // 7-bit, 16-bit and 64-bit lengths
    for (const text of texts) ws.send(JSON.stringify({ text }));
    await waitFor('three messages at the server', () => server.received.length >= 3);
    assert.deepEqual(server.received.map((m) => m.text), texts);
    assert.equal(server.unmaskedFrames, 0, 'a client masks every frame');
  });

  test('a message in fragments, with a ping between them, is delivered once and whole', async () => {
    const pongs = server.pongs.length;
    const arriving = nextMessage(ws);
    server.send({ hello: 'y'.repeat(1000) }, { fragments: 3, pingInside: 'mid-message' });
    assert.deepEqual(JSON.parse(await arriving), { hello: 'y'.repeat(1000) });
    await waitFor('the pong', () => server.pongs.length > pongs);
    assert.equal(server.pongs[pongs], 'mid-message', 'the pong carries the ping payload');
  });

  test('large server messages (16-bit and 64-bit lengths) arrive whole', async () => {
    for (const size of [300, 100000]) {
      const arriving = nextMessage(ws);
      server.send({ blob: 'z'.repeat(size) });
      assert.equal(JSON.parse(await arriving).blob.length, size);
    }
  });

  test('a close from the server is answered and reported with its code', async () => {
    const closed = new Promise((resolve) => ws.once('close', resolve));
    server.closeClient(4001);
    const info = await closed;
    assert.equal(info.code, 4001);
    assert.equal(ws.isOpen, false);
    assert.equal(ws.send('late'), false, 'nothing is sent once closing');
  });
});

describe('the WebSocket client against the agent', () => {
  test("the agent's event stream opens with a hello holding the full status", async () => {
    const { url, token } = agentEnv();
    const ws = await connect(`${url.replace(/^http/, 'ws')}/api/v1/events`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    try {
      const hello = JSON.parse(await nextMessage(ws));
      assert.equal(hello.type, 'hello');
      assert.ok(Array.isArray(hello.status.groups), 'the status lists the groups');
      assert.ok(hello.status.groups.some((g) => g.id === 'main'));
    } finally {
      const closed = new Promise((resolve) => ws.once('close', resolve));
      ws.close(1000, 'done');
      assert.equal((await closed).code, 1000, 'the agent answers the closing handshake');
    }
  });

  test('a wrong token is refused at the handshake with HTTP 401', async () => {
    const { url } = agentEnv();
    await assert.rejects(
      connect(`${url.replace(/^http/, 'ws')}/api/v1/events`, {
        headers: { Authorization: 'Bearer wrong-token-wrong-token' },
      }),
      (err) => err instanceof HandshakeError && err.status === 401,
    );
  });

  test('nothing listening is a connection error, not a hang', async () => {
    const url = await deadUrl();
    await assert.rejects(connect(url.replace(/^http/, 'ws')), (err) => err.code === 'ECONNREFUSED');
  });
});
