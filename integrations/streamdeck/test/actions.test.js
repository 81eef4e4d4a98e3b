'use strict';
/**
 * The keys' logic (bin/lib/actions.js) with its collaborators replaced: a recorder for Stream
 * Deck and a hand-driven event link, for what the end-to-end tests cannot pin down — a key is
 * drawn again only when what it shows changes, and a replaced link is not listened to.
 */

const assert = require('node:assert/strict');
const { EventEmitter } = require('node:events');
const { test } = require('node:test');

const { ACTIONS, Controller } = require('../io.cascade.relay.sdPlugin/bin/lib/actions');
const { Log } = require('../io.cascade.relay.sdPlugin/bin/lib/log');

class RecorderDeck {
  constructor() {
    this.sent = [];
    for (const name of ['setTitle', 'setState', 'showOk', 'showAlert', 'setGlobalSettings', 'sendToPropertyInspector', 'logMessage']) {
      this[name] = (...args) => this.sent.push([name, ...args]);
    }
  }

  count(name, context) {
    return this.sent.filter(([n, c]) => n === name && c === context).length;
  }
}

class HandLink extends EventEmitter {
  start() {
    this.started = true;
  }

  stop() {
    this.stopped = true;
  }

  online(status) {
    this.emit('status', status);
    this.emit('link', { state: 'online', detail: 'connected' });
  }
}

function setUp() {
  const deck = new RecorderDeck();
  const links = [];
  const lines = [];
  const controller = new Controller({
    deck,
    log: new Log({ write: (line) => lines.push(line) }),
    makeLink: () => {
      const link = new HandLink();
      links.push(link);
      return link;
    },
  });
  return { deck, links, lines, controller };
}

const STATUS = {
  groups: [{ id: 'main', name: 'Main', state: 'live', targets: [{ id: 'rec', state: 'live', enabled: true }] }],
};
const STATS = { type: 'stats', group: 'main', stats: STATUS.groups[0] };

test('a key is drawn again only when its title or state changes, not on every stats event', async () => {
  const { deck, links, controller } = setUp();
  await controller.handle({ event: 'didReceiveGlobalSettings', payload: { settings: { token: 'x'.repeat(43) } } });
  await controller.handle({ event: 'willAppear', action: ACTIONS.toggleGroup, context: 'k', payload: { settings: { group: 'main' } } });
  links[0].online(STATUS);
  const titles = deck.count('setTitle', 'k');
  const states = deck.count('setState', 'k');
  for (let i = 0; i < 5; i += 1) links[0].emit('event', STATS);
  assert.equal(deck.count('setTitle', 'k'), titles);
  assert.equal(deck.count('setState', 'k'), states);
  links[0].emit('event', { type: 'group.state', group: 'main', state: 'degraded' });
  assert.equal(deck.count('setTitle', 'k'), titles + 1);
  assert.equal(deck.count('setState', 'k'), states, 'still switched on: the state is not sent again');
  assert.deepEqual(deck.sent[deck.sent.length - 1], ['setTitle', 'k', 'Main\ndegraded']);
});

test('new global settings replace the link, and the old link is no longer listened to', async () => {
  const { deck, links, lines, controller } = setUp();
  const token = 'first-token-abcdefghijklmnopq';
  await controller.handle({ event: 'didReceiveGlobalSettings', payload: { settings: { token } } });
  await controller.handle({ event: 'willAppear', action: ACTIONS.toggleGroup, context: 'k', payload: { settings: { group: 'main' } } });
  links[0].online(STATUS);
  await controller.handle({
    event: 'didReceiveGlobalSettings',
    payload: { settings: { agentUrl: 'http://127.0.0.1:5000', token: 'second-token-abcdefghijklmn' } },
  });
  assert.equal(links.length, 2);
  assert.equal(links[0].stopped, true);
  assert.equal(links[1].started, true);
  const before = deck.sent.length;
  links[0].emit('event', { type: 'group.state', group: 'main', state: 'idle' });
  links[0].emit('link', { state: 'offline', detail: 'old link' });
  assert.equal(deck.sent.length, before, 'the old link changes nothing');
  assert.ok(!lines.join('\n').includes(token));
});
