'use strict';
/**
 * What a key shows for each state the agent reports (bin/lib/faces.js, pure functions), and
 * how the event stream keeps RelayState current (bin/lib/relay-state.js).
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { allFace, groupFace, targetFace } = require('../io.cascade.relay.sdPlugin/bin/lib/faces');
const { RelayState } = require('../io.cascade.relay.sdPlugin/bin/lib/relay-state');

test('a group key shows the group name and its state; state 1 whenever the group is switched on', () => {
  const cases = [
    ['idle', 'Main\nidle', 0],
    ['armed', 'Main\narmed', 1],
    ['waiting', 'Main\nwaiting', 1],
    ['starting', 'Main\nstarting', 1],
    ['live', 'Main\nLIVE', 1],
    ['degraded', 'Main\ndegraded', 1],
  ];
  for (const [state, title, keyState] of cases) {
    assert.deepEqual(groupFace({ link: 'online', id: 'main', group: { name: 'Main', state } }), { title, state: keyState }, state);
  }
});

test('a target key shows on/off, LIVE, or what is wrong; state 1 while it is switched on', () => {
  const cases = [
    [{ state: 'disabled', enabled: false }, 'yt\noff', 0],
    [{ state: 'idle', enabled: true }, 'yt\non', 1],
    [{ state: 'live', enabled: true }, 'yt\nLIVE', 1],
    [{ state: 'retrying', enabled: true }, 'yt\nretrying', 1],
    [{ state: 'failed', enabled: true }, 'yt\nfailed', 1],
  ];
  for (const [target, title, keyState] of cases) {
    assert.deepEqual(targetFace({ link: 'online', id: 'yt', target }), { title, state: keyState }, title);
  }
});

test('while the agent cannot be used every key says why, in state 0', () => {
  const words = { offline: 'offline', unauthorized: 'bad token', 'no-token': 'no token', 'bad-url': 'set up', connecting: '…' };
  for (const [link, word] of Object.entries(words)) {
    assert.deepEqual(groupFace({ link, id: 'main', group: { name: 'Main', state: 'live' } }), { title: `Main\n${word}`, state: 0 });
    assert.deepEqual(targetFace({ link, id: 'yt', target: { state: 'live', enabled: true } }), { title: `yt\n${word}`, state: 0 });
    assert.deepEqual(allFace({ link }), { title: word, state: 0 });
  }
  assert.deepEqual(allFace({ link: 'online' }), { title: null, state: 0 }, "online: the person's own title");
});

test('a key without an id asks for one; an id the agent does not know says missing', () => {
  assert.deepEqual(groupFace({ link: 'online' }), { title: 'choose\ngroup', state: 0 });
  assert.deepEqual(targetFace({ link: 'online' }), { title: 'choose\ntarget', state: 0 });
  assert.deepEqual(groupFace({ link: 'online', id: 'gone' }), { title: 'gone\nmissing', state: 0 });
  assert.deepEqual(targetFace({ link: 'online', id: 'gone' }), { title: 'gone\nmissing', state: 0 });
});

test('RelayState follows hello, group.state, target.state and stats events', () => {
  const relay = new RelayState();
  relay.replace({
    groups: [{ id: 'main', name: 'Main', state: 'idle', targets: [{ id: 'rec', state: 'idle', enabled: true }] }],
  });
  assert.equal(relay.group('main').state, 'idle');
  assert.equal(relay.apply({ type: 'group.state', group: 'main', state: 'waiting' }), true);
  assert.equal(relay.group('main').state, 'waiting');
  relay.apply({ type: 'target.state', group: 'main', target: 'rec', state: 'disabled' });
  assert.deepEqual(relay.target('rec'), { id: 'rec', group: 'main', state: 'disabled', enabled: false });
  relay.apply({
    type: 'stats',
    group: 'main',
    stats: { id: 'main', name: 'Main', state: 'live', targets: [{ id: 'rec', state: 'live', enabled: true }] },
  });
  assert.equal(relay.group('main').state, 'live');
  assert.deepEqual(relay.target('rec'), { id: 'rec', group: 'main', state: 'live', enabled: true });
  assert.equal(relay.apply({ type: 'log', line: 'x' }), false, 'other events change nothing a key shows');
  relay.apply({ type: 'group.state', group: 'added', state: 'waiting' });
  assert.equal(relay.group('added').state, 'waiting', 'a group added since the hello');
  assert.equal(relay.apply({ type: 'target.state', group: 'unknown', target: 't', state: 'live' }), false);
});
