/*
 * The property inspector of every Cascade key (runs in Stream Deck's embedded browser).
 *
 * It talks to Stream Deck only. The agent URL and token go to the plugin (`sendToPlugin`
 * {request: 'connect'}), which stores them as the plugin's global settings and answers with
 * the agent's groups and targets (`sendToPropertyInspector` {type: 'choices'}); the token is
 * never sent back here. The group or target a key controls is the key's own setting
 * (`setSettings`).
 */
'use strict';

(function () {
  const ACTIONS = {
    'io.cascade.relay.toggle-group': 'group',
    'io.cascade.relay.toggle-target': 'target',
  };
  let socket = null;
  let uuid = null;
  let action = null;
  let settings = {};

  const $ = (id) => document.getElementById(id);

  function send(message) {
    if (socket && socket.readyState === 1) socket.send(JSON.stringify(message));
  }

  function toPlugin(payload) {
    send({ action, event: 'sendToPlugin', context: uuid, payload });
  }

  function say(text, isError) {
    const message = $('message');
    message.textContent = text || '';
    message.classList.toggle('error', Boolean(isError));
  }

  function fill(select, items, chosen, label) {
    select.textContent = '';
    const blank = document.createElement('option');
    blank.value = '';
    blank.textContent = items.length ? 'choose…' : 'none found';
    select.appendChild(blank);
    let found = false;
    for (const item of items) {
      const option = document.createElement('option');
      option.value = item.id;
      option.textContent = label(item);
      if (item.id === chosen) found = true;
      select.appendChild(option);
    }
    if (chosen && !found) {
      const missing = document.createElement('option');
      missing.value = chosen;
      missing.textContent = `${chosen} (not found)`;
      select.appendChild(missing);
    }
    select.value = chosen || '';
  }

  function showChoices(choices) {
    $('agent-url').value = choices.agentUrl || '';
    $('token').value = '';
    $('token').placeholder = choices.hasToken ? 'saved (type to replace)' : "output of 'cascade token'";
    fill($('group'), choices.groups || [], settings.group, (g) => (g.name && g.name !== g.id ? `${g.name} (${g.id})` : g.id));
    fill($('target'), choices.targets || [], settings.target, (t) => `${t.id} (group ${t.group})`);
    if (choices.error) say(choices.error, true);
    else say(`Connected to Cascade ${choices.version || ''}`.trim(), false);
  }

  function choose(kind) {
    settings = { ...settings, [kind]: $(kind).value };
    send({ action, event: 'setSettings', context: uuid, payload: settings });
  }

  // Stream Deck calls this once the page has loaded.
  window.connectElgatoStreamDeckSocket = function (port, inUUID, registerEvent, info, actionInfo) {
    uuid = inUUID;
    const about = JSON.parse(actionInfo || '{}');
    action = about.action;
    settings = (about.payload && about.payload.settings) || {};
    const kind = ACTIONS[action];
    if (kind) {
      $('key').hidden = false;
      $(`${kind}-row`).hidden = false;
      $(kind).addEventListener('change', () => choose(kind));
    }
    $('connection').addEventListener('submit', (event) => {
      event.preventDefault();
      say('Connecting…', false);
      toPlugin({ request: 'connect', agentUrl: $('agent-url').value, token: $('token').value });
      $('token').value = '';
    });
    socket = new WebSocket(`ws://127.0.0.1:${port}`);
    socket.onopen = () => {
      send({ event: registerEvent, uuid });
      toPlugin({ request: 'refresh' });
    };
    socket.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.event === 'sendToPropertyInspector' && data.payload && data.payload.type === 'choices') {
        showChoices(data.payload);
      } else if (data.event === 'didReceiveSettings' && data.payload) {
        settings = data.payload.settings || {};
      }
    };
  };
})();
