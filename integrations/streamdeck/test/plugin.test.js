'use strict';
/**
 * The real plugin (bin/plugin.js), started the way Stream Deck starts it, connected to a
 * Stream Deck stand-in and to the running agent: each action changes the agent's state, each
 * key's title and state follow the agent's WebSocket events, the property inspector is served
 * by the plugin, and an agent that cannot be reached shows "offline" and alerts.
 *
 * This is the only test file that changes the agent's state (node runs files side by side).
 */

const assert = require('node:assert/strict');
const { after, afterEach, before, beforeEach, describe, test } = require('node:test');

const { ACTION, AgentProxy, FakeStreamDeck, agentEnv, api, deadUrl, startPlugin, waitFor } = require('./helpers');

/** Every group stopped, every target switched on. */
async function resetAgent() {
  await api('POST', '/stop-all');
  for (const id of ['rec', 'rec2', 'site']) {
    const target = await api('GET', `/targets/${id}`);
    if (!target.enabled) await api('POST', `/targets/${id}/enable`);
  }
}

async function groupState(id) {
  return (await api('GET', `/groups/${id}`)).state;
}

/** A plugin connected to a fresh Stream Deck stand-in with these global settings. */
async function pluginWith(globalSettings) {
  const deck = await new FakeStreamDeck({ globalSettings }).start();
  const plugin = await startPlugin(deck);
  return { deck, plugin };
}

describe('the plugin against the agent', () => {
  let deck;
  let plugin;
  let token;

  before(async () => {
    const env = agentEnv();
    token = env.token;
    await resetAgent();
    ({ deck, plugin } = await pluginWith({ agentUrl: env.url, token: env.token }));
  });

  beforeEach(resetAgent);

  after(async () => {
    if (plugin) await plugin.stop();
    if (deck) await deck.stop();
    await resetAgent();
  });

  test('it registers with the -registerEvent and -pluginUUID it was started with, then reads its global settings', async () => {
    assert.deepEqual(plugin.registration, { event: 'registerPlugin', uuid: plugin.registrationUuid });
    const asked = await deck.waitMessage('getGlobalSettings', (m) => m.event === 'getGlobalSettings');
    assert.equal(asked.context, plugin.registrationUuid, 'global settings are addressed by the plugin UUID');
    assert.equal(deck.unmaskedFrames, 0, 'the plugin masks every frame it sends');
  });

  test("a toggle-group key shows its group's name and state as soon as it appears", async () => {
    deck.appear('key-appear', ACTION.group, { group: 'main' });
    await deck.waitFace('key-appear', 'Main\nidle', 0);
    deck.disappear('key-appear', ACTION.group);
  });

  test('pressing toggle group starts the group on the agent, the key follows it to LIVE, and a second press stops it', async () => {
    deck.appear('key-main', ACTION.group, { group: 'main' });
    await deck.waitFace('key-main', 'Main\nidle', 0);
    deck.press('key-main', ACTION.group, { group: 'main' });
    await waitFor('group main to start on the agent', async () => (await groupState('main')) !== 'idle');
    await deck.waitFace('key-main', 'Main\nLIVE', 1);
    assert.equal(await groupState('main'), 'live');
    assert.equal(await groupState('backup'), 'idle', 'the other group is not touched');

    deck.press('key-main', ACTION.group, { group: 'main' });
    await waitFor('group main to stop on the agent', async () => (await groupState('main')) === 'idle');
    await deck.waitFace('key-main', 'Main\nidle', 0);
    assert.equal(deck.commands('showAlert', 'key-main').length, 0);
  });

  test("a group started and stopped elsewhere shows on its key through the agent's events", async () => {
    deck.appear('key-events', ACTION.group, { group: 'main' });
    await deck.waitFace('key-events', 'Main\nidle', 0);
    const before = deck.received.length;
    await api('POST', '/groups/main/start');
    await deck.waitFace('key-events', 'Main\nLIVE', 1);
    const titles = deck.received.slice(before).filter((m) => m.event === 'setTitle' && m.context === 'key-events');
    assert.ok(
      titles.some((m) => /waiting|starting/.test(m.payload.title)),
      `the key went through the states in between: ${titles.map((m) => JSON.stringify(m.payload.title))}`,
    );
    await api('POST', '/groups/main/stop');
    await deck.waitFace('key-events', 'Main\nidle', 0);
  });

  test('toggle target switches that one target off and on, and no other', async () => {
    deck.appear('key-rec2', ACTION.target, { target: 'rec2' });
    await deck.waitFace('key-rec2', 'rec2\non', 1);
    deck.press('key-rec2', ACTION.target, { target: 'rec2' });
    await waitFor('rec2 switched off on the agent', async () => !(await api('GET', '/targets/rec2')).enabled);
    await deck.waitFace('key-rec2', 'rec2\noff', 0);
    assert.equal((await api('GET', '/targets/site')).enabled, true, 'its neighbour stays on');
    assert.equal((await api('GET', '/targets/rec')).enabled, true);

    deck.press('key-rec2', ACTION.target, { target: 'rec2' });
    await waitFor('rec2 switched on again', async () => (await api('GET', '/targets/rec2')).enabled);
    await deck.waitFace('key-rec2', 'rec2\non', 1);
  });

  test('a target key follows its target to LIVE when its group runs', async () => {
    deck.appear('key-rec', ACTION.target, { target: 'rec' });
    await deck.waitFace('key-rec', 'rec\non', 1);
    await api('POST', '/groups/main/start');
    await deck.waitFace('key-rec', 'rec\nLIVE', 1);
  });

  test('start all starts every group and shows OK; stop all stops every group and shows OK', async () => {
    deck.appear('key-start', ACTION.startAll, {});
    deck.appear('key-stop', ACTION.stopAll, {});
    deck.appear('key-backup', ACTION.group, { group: 'backup' });
    await deck.waitFace('key-backup', 'backup\nidle', 0);
    assert.equal(deck.face('key-start').title, undefined, "start all keeps the person's own title");

    let from = deck.received.length;
    deck.press('key-start', ACTION.startAll);
    await deck.waitCommand('showOk', 'key-start', from);
    const started = await api('GET', '/status');
    for (const group of started.groups) assert.notEqual(group.state, 'idle', `group ${group.id} started`);
    // backup's target 'site' points at a closed port, so that group runs degraded.
    await deck.waitFace('key-backup', 'backup\ndegraded', 1);

    from = deck.received.length;
    deck.press('key-stop', ACTION.stopAll);
    await deck.waitCommand('showOk', 'key-stop', from);
    const stopped = await api('GET', '/status');
    for (const group of stopped.groups) assert.equal(group.state, 'idle', `group ${group.id} stopped`);
    await deck.waitFace('key-backup', 'backup\nidle', 0);
    assert.equal(deck.commands('showAlert', 'key-start').length + deck.commands('showAlert', 'key-stop').length, 0);
  });

  test('a failing action shows an alert and logs why', async () => {
    deck.appear('key-nope', ACTION.group, { group: 'nope' });
    await deck.waitFace('key-nope', 'nope\nmissing', 0);
    const from = deck.received.length;
    deck.press('key-nope', ACTION.group, { group: 'nope' });
    await deck.waitCommand('showAlert', 'key-nope', from);
    await waitFor('the failure in the log', () => plugin.output().includes("toggle group 'nope' failed"));
    assert.match(plugin.output(), /there is no group 'nope'/);
    const logged = deck.commands('logMessage').map((m) => m.payload.message);
    assert.ok(logged.some((line) => line.includes("toggle group 'nope' failed")), 'also in Stream Deck\'s log');
  });

  test('a key with no group chosen asks for one, and alerts when pressed', async () => {
    deck.appear('key-blank', ACTION.group, {});
    await deck.waitFace('key-blank', 'choose\ngroup', 0);
    const from = deck.received.length;
    deck.press('key-blank', ACTION.group, {});
    await deck.waitCommand('showAlert', 'key-blank', from);
  });

  test('new settings for a key (didReceiveSettings) switch it to another group', async () => {
    deck.appear('key-switch', ACTION.group, { group: 'main' });
    await deck.waitFace('key-switch', 'Main\nidle', 0);
    deck.settings('key-switch', ACTION.group, { group: 'backup' });
    await deck.waitFace('key-switch', 'backup\nidle', 0);
    deck.press('key-switch', ACTION.group, { group: 'backup' });
    await waitFor('group backup to start', async () => (await groupState('backup')) !== 'idle');
    assert.equal(await groupState('main'), 'idle');
  });

  test("the property inspector gets the agent's groups and targets from the plugin, never the token", async () => {
    let from = deck.received.length;
    deck.send({ action: ACTION.group, event: 'propertyInspectorDidAppear', context: 'key-pi', device: 'test-device' });
    const shown = await deck.waitCommand('sendToPropertyInspector', 'key-pi', from);
    from = deck.received.length;
    deck.toPlugin('key-pi', ACTION.group, { request: 'refresh' });
    const answer = await deck.waitCommand('sendToPropertyInspector', 'key-pi', from);
    for (const { payload } of [shown, answer]) {
      assert.equal(payload.type, 'choices');
      assert.equal(payload.error, null);
      assert.equal(payload.hasToken, true);
      assert.equal(payload.agentUrl, agentEnv().url);
      assert.deepEqual(payload.groups.map((g) => [g.id, g.name]), [['main', 'Main'], ['backup', 'backup']]);
      assert.deepEqual(payload.targets.map((t) => [t.id, t.group]), [['rec', 'main'], ['rec2', 'backup'], ['site', 'backup']]);
      assert.ok(!JSON.stringify(payload).includes(token));
    }
  });

  test("Stream Deck's pings are answered, and an event in fragments is read whole", async () => {
    const pongs = deck.pongs.length;
    deck.ping('are-you-there');
    await waitFor('the pong', () => deck.pongs.length > pongs);
    assert.equal(deck.pongs[pongs], 'are-you-there');
    const event = {
      action: ACTION.group,
      event: 'willAppear',
      context: 'key-fragments',
      device: 'test-device',
      payload: { settings: { group: 'main' }, coordinates: { column: 1, row: 1 }, controller: 'Keypad', state: 0 },
    };
    deck.send(event, { fragments: 4, pingInside: 'between-fragments' });
    await deck.waitFace('key-fragments', 'Main\nidle', 0);
    await waitFor('the pong sent between fragments', () => deck.pongs.includes('between-fragments'));
  });

  test('the token is in no title, no inspector message and no log line', () => {
    const outgoing = deck.received.filter((m) => ['setTitle', 'sendToPropertyInspector', 'logMessage'].includes(m.event));
    assert.ok(outgoing.length > 10);
    assert.ok(!JSON.stringify(outgoing).includes(token), 'a command carried the token');
    assert.ok(!plugin.output().includes(token), "the plugin's output carried the token");
  });
});

describe('setting the plugin up from the property inspector', () => {
  let deck;
  let plugin;

  afterEach(async () => {
    if (plugin) await plugin.stop();
    if (deck) await deck.stop();
    plugin = null;
    deck = null;
  });

  test('without a token the keys say so and alert; URL and token from the inspector are saved globally and bring them online', async () => {
    const { url, token } = agentEnv();
    ({ deck, plugin } = await pluginWith({}));
    deck.appear('key-setup', ACTION.group, { group: 'main' });
    await deck.waitFace('key-setup', 'main\nno token', 0);
    let from = deck.received.length;
    deck.press('key-setup', ACTION.group, { group: 'main' });
    await deck.waitCommand('showAlert', 'key-setup', from);

    from = deck.received.length;
    deck.toPlugin('key-setup', ACTION.group, { request: 'connect', agentUrl: url, token: ` ${token} ` });
    const answer = await deck.waitCommand('sendToPropertyInspector', 'key-setup', from);
    assert.equal(answer.payload.error, null);
    assert.deepEqual(answer.payload.groups.map((g) => g.id), ['main', 'backup']);
    assert.deepEqual(deck.globalSettings, { agentUrl: url, token }, 'kept as global settings, trimmed');
    assert.ok(!JSON.stringify(answer).includes(token), 'the answer does not echo the token');
    await deck.waitFace('key-setup', 'Main\nidle', 0);

    // A later save with the token field left empty keeps the saved token.
    from = deck.received.length;
    deck.toPlugin('key-setup', ACTION.group, { request: 'connect', agentUrl: url, token: '' });
    assert.equal((await deck.waitCommand('sendToPropertyInspector', 'key-setup', from)).payload.hasToken, true);
    assert.deepEqual(deck.globalSettings, { agentUrl: url, token });
    assert.ok(!plugin.output().includes(token));
  });

  test('an agent URL that is not http://host:port is refused in the inspector, and nothing is saved', async () => {
    ({ deck, plugin } = await pluginWith({}));
    const from = deck.received.length;
    deck.toPlugin('key-url', ACTION.startAll, { request: 'connect', agentUrl: 'ftp://127.0.0.1:21', token: 'x'.repeat(43) });
    const answer = await deck.waitCommand('sendToPropertyInspector', 'key-url', from);
    assert.match(answer.payload.error, /must start with http:\/\//);
    assert.equal(deck.commands('setGlobalSettings').length, 0);
  });

  test('a wrong token shows "bad token" on the keys, and a press alerts', async () => {
    ({ deck, plugin } = await pluginWith({ agentUrl: agentEnv().url, token: 'wrong-token-zyxwvutsrqponmlk' }));
    deck.appear('key-bad', ACTION.target, { target: 'rec' });
    await deck.waitFace('key-bad', 'rec\nbad token', 0);
    const from = deck.received.length;
    deck.press('key-bad', ACTION.target, { target: 'rec' });
    await deck.waitCommand('showAlert', 'key-bad', from);
    await waitFor('the failure in the log', () => /the API token is wrong/.test(plugin.output()));
    assert.ok(!plugin.output().includes('wrong-token-zyxwvutsrqponmlk'));
  });
});

describe('an agent that cannot be reached', () => {
  let deck;
  let plugin;
  let proxy;

  afterEach(async () => {
    if (plugin) await plugin.stop();
    if (deck) await deck.stop();
    if (proxy) await proxy.stop();
    plugin = null;
    deck = null;
    proxy = null;
  });

  after(resetAgent);

  test('with nothing listening every key says offline, and a press shows an alert', async () => {
    const url = await deadUrl();
    ({ deck, plugin } = await pluginWith({ agentUrl: url, token: agentEnv().token }));
    deck.appear('key-off-group', ACTION.group, { group: 'main' });
    deck.appear('key-off-target', ACTION.target, { target: 'rec' });
    deck.appear('key-off-start', ACTION.startAll, {});
    await deck.waitFace('key-off-group', 'main\noffline', 0);
    await deck.waitFace('key-off-target', 'rec\noffline', 0);
    await deck.waitFace('key-off-start', 'offline');
    for (const [context, action, settings] of [
      ['key-off-group', ACTION.group, { group: 'main' }],
      ['key-off-start', ACTION.startAll, {}],
    ]) {
      const from = deck.received.length;
      deck.press(context, action, settings);
      await deck.waitCommand('showAlert', context, from);
    }
    const said = new RegExp(`start all failed: Cascade is not reachable at ${url.replace(/\./g, '\\.')}`);
    await waitFor('the failure in the log', () => said.test(plugin.output()));
    assert.equal(deck.commands('showOk').length, 0);
  });

  test('when the agent goes away the keys say offline and alert, and they follow it again once it is back', async () => {
    await resetAgent();
    proxy = await new AgentProxy(agentEnv().url).start();
    ({ deck, plugin } = await pluginWith({ agentUrl: proxy.url, token: agentEnv().token }));
    deck.appear('key-away', ACTION.group, { group: 'main' });
    await deck.waitFace('key-away', 'Main\nidle', 0);

    await proxy.stop();
    await deck.waitFace('key-away', 'Main\noffline', 0);
    const from = deck.received.length;
    deck.press('key-away', ACTION.group, { group: 'main' });
    await deck.waitCommand('showAlert', 'key-away', from);
    assert.equal(await groupState('main'), 'idle', 'nothing reached the agent');

    // While it was away the group was started by someone else: the key shows it on return.
    await api('POST', '/groups/main/start');
    await proxy.start();
    await deck.waitFace('key-away', 'Main\nLIVE', 1);
  });
});

describe('the plugin and Stream Deck', () => {
  test('the plugin ends by itself when Stream Deck closes the connection', async () => {
    const { deck, plugin } = await pluginWith({});
    try {
      deck.closeClient(1001);
      const how = await Promise.race([
        plugin.exited,
        new Promise((resolve) => setTimeout(() => resolve('still running'), 5000)),
      ]);
      assert.deepEqual(how, { code: 0, signal: null });
    } finally {
      await plugin.stop();
      await deck.stop();
    }
  });
});
