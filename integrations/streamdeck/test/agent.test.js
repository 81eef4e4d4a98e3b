'use strict';
/**
 * The plugin's agent side (bin/lib/agent.js, bin/lib/agent-link.js) against the running agent.
 * Only reads here: the tests that change the agent's state are in plugin.test.js (node runs
 * test files side by side).
 */

const assert = require('node:assert/strict');
const { describe, test } = require('node:test');

const { AgentClient, AgentError, normaliseAgentUrl } = require('../io.cascade.relay.sdPlugin/bin/lib/agent');
const { AgentLink } = require('../io.cascade.relay.sdPlugin/bin/lib/agent-link');
const { AgentProxy, agentEnv, deadUrl, waitFor } = require('./helpers');

function client(overrides = {}) {
  const { url, token } = agentEnv();
  return new AgentClient({ url, token, ...overrides });
}

/** Collect a link's `link` states and retries until `done` says enough. */
function watch(link) {
  const seen = { states: [], retries: [], statuses: [], events: [] };
  link.on('link', ({ state, detail }) => seen.states.push({ state, detail }));
  link.on('retry', ({ inMs }) => seen.retries.push(inMs));
  link.on('status', (status) => seen.statuses.push(status));
  link.on('event', (event) => seen.events.push(event));
  return seen;
}

describe('the API client', () => {
  test("status() is the agent's status, with the profile's groups and targets", async () => {
    const status = await client().status();
    const groups = Object.fromEntries(status.groups.map((g) => [g.id, g.targets.map((t) => t.id)]));
    assert.deepEqual(groups, { main: ['rec'], backup: ['rec2', 'site'] });
  });

  test("an action the agent refuses is an AgentError 'refused' with the agent's code and message", async () => {
    await assert.rejects(client().toggleGroup('nope'), (err) => {
      assert.ok(err instanceof AgentError);
      assert.equal(err.kind, 'refused');
      assert.equal(err.status, 404);
      assert.equal(err.code, 'not_found');
      assert.match(err.message, /there is no group 'nope'/);
      return true;
    });
  });

  test("a wrong token is 'refused' 401, and the message does not repeat the token", async () => {
    const wrong = 'wrong-token-0123456789-wrong';
    await assert.rejects(client({ token: wrong }).status(), (err) => {
      assert.equal(err.kind, 'refused');
      assert.equal(err.status, 401);
      assert.equal(err.code, 'unauthorized');
      assert.ok(!err.message.includes(wrong));
      return true;
    });
  });

  test("an agent that is not running is 'unreachable', naming the address", async () => {
    const url = await deadUrl();
    await assert.rejects(client({ url }).startAll(), (err) => {
      assert.equal(err.kind, 'unreachable');
      assert.match(err.message, new RegExp(`not reachable at ${url.replace(/\./g, '\\.')} \\(connection refused\\)`));
      return true;
    });
  });

  test("without a token nothing is sent: 'setup'", async () => {
    await assert.rejects(client({ token: '' }).status(), (err) => err.kind === 'setup' && /cascade token/.test(err.message));
  });

  test('agent URLs: empty means the default, a bare host:port gets http://, anything else is refused', () => {
    assert.equal(normaliseAgentUrl(''), 'http://127.0.0.1:47830');
    assert.equal(normaliseAgentUrl(' 127.0.0.1:5000 '), 'http://127.0.0.1:5000');
    assert.equal(normaliseAgentUrl('http://localhost:47830/'), 'http://localhost:47830');
    for (const bad of ['ftp://127.0.0.1:21', 'http://127.0.0.1:47830/api/v1', 'http://user:pw@127.0.0.1:1', 'http://']) {
      assert.throws(() => normaliseAgentUrl(bad), (err) => err.kind === 'setup', bad);
    }
  });
});

describe('the event link', () => {
  test("goes online with the hello's full status", async () => {
    const link = new AgentLink(client());
    const seen = watch(link);
    link.start();
    try {
      await waitFor('the link online', () => link.state === 'online');
      assert.deepEqual(
        seen.states.map((s) => s.state),
        ['connecting', 'online'],
      );
      assert.equal(seen.statuses.length, 1, 'the status arrives before the link says online');
      assert.deepEqual(seen.statuses[0].groups.map((g) => g.id), ['main', 'backup']);
    } finally {
      link.stop();
    }
  });

  test('with nothing listening it is offline and retries with growing delays', async () => {
    const link = new AgentLink(client({ url: await deadUrl() }), { backoff: { initialMs: 20, maxMs: 160, jitter: 0 } });
    const seen = watch(link);
    link.start();
    try {
      await waitFor('five retries', () => seen.retries.length >= 5);
      assert.equal(link.state, 'offline');
      assert.match(seen.states[seen.states.length - 1].detail, /not reachable .* \(connection refused\)/);
      assert.deepEqual(seen.retries.slice(0, 5), [20, 40, 80, 160, 160]);
    } finally {
      link.stop();
    }
  });

  test("a wrong token is 'unauthorized', and not retried at once", async () => {
    const wrong = 'wrong-token-abcdefghijklmnop';
    const link = new AgentLink(client({ token: wrong }), { backoff: { initialMs: 20, maxMs: 3000, jitter: 0 } });
    const seen = watch(link);
    link.start();
    try {
      await waitFor('the link unauthorized', () => link.state === 'unauthorized');
      assert.deepEqual(seen.retries, [3000], 'the next try waits the longest delay');
      assert.ok(!JSON.stringify(seen.states).includes(wrong), 'no state detail holds the token');
    } finally {
      link.stop();
    }
  });

  test('when the agent goes away the link goes offline, and comes back online by itself', async () => {
    const proxy = await new AgentProxy(agentEnv().url).start();
    const link = new AgentLink(client({ url: proxy.url }), { backoff: { initialMs: 50, maxMs: 400 } });
    const seen = watch(link);
    link.start();
    try {
      await waitFor('the link online', () => link.state === 'online');
      await proxy.stop();
      await waitFor('the link offline', () => link.state === 'offline');
      await waitFor('a few failed retries', () => seen.retries.length >= 3);
      await proxy.start();
      await waitFor('the link online again', () => link.state === 'online');
      assert.equal(seen.statuses.length, 2, 'a fresh hello status after reconnecting');
      assert.deepEqual(
        seen.states.map((s) => s.state).filter((s, i, all) => s !== all[i - 1]),
        ['connecting', 'online', 'offline', 'online'],
      );
    } finally {
      link.stop();
      await proxy.stop();
    }
  });
});
