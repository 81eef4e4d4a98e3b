'use strict';
/**
 * Stream Deck's side: the plugin's registration and the commands it sends (SDK v2 protocol).
 *
 * Stream Deck starts the plugin as `node bin/plugin.js -port P -pluginUUID U -registerEvent E
 * -info JSON`. The plugin opens `ws://127.0.0.1:P`, sends `{event: E, uuid: U}`, and from then
 * on receives one JSON event per message (`willAppear`, `keyDown`, ...) and sends commands
 * (`setTitle`, `setState`, `showAlert`, ...). Per-key commands name the key by its `context`;
 * global settings are addressed with the plugin's own UUID.
 */

const { EventEmitter } = require('node:events');
const websocket = require('./websocket');

/** The four registration arguments, or an Error naming the one missing. */
function parseArgs(argv) {
  const found = {};
  for (let i = 0; i < argv.length - 1; i += 1) {
    if (argv[i].startsWith('-')) found[argv[i].replace(/^-+/, '')] = argv[i + 1];
  }
  for (const name of ['port', 'pluginUUID', 'registerEvent']) {
    if (!found[name]) throw new Error(`Stream Deck did not pass -${name}; this file is started by Stream Deck`);
  }
  let info = {};
  try {
    info = found.info ? JSON.parse(found.info) : {};
  } catch {
    info = {};
  }
  return { port: Number(found.port), pluginUUID: found.pluginUUID, registerEvent: found.registerEvent, info };
}

/** The open, registered connection to Stream Deck. Emits each event by name, and `close`. */
class StreamDeck extends EventEmitter {
  constructor({ port, pluginUUID, registerEvent }) {
    super();
    this.port = port;
    this.pluginUUID = pluginUUID;
    this.registerEvent = registerEvent;
    this.socket = null;
  }

  async connect() {
    const socket = await websocket.connect(`ws://127.0.0.1:${this.port}`);
    this.socket = socket;
    socket.on('error', (err) => this.emit('socketError', err));
    socket.on('close', (info) => this.emit('close', info));
    socket.on('message', (text) => {
      let message;
      try {
        message = JSON.parse(text);
      } catch {
        return;
      }
      if (message && typeof message.event === 'string') this.emit('message', message);
    });
    this._send({ event: this.registerEvent, uuid: this.pluginUUID });
    return this;
  }

  close() {
    if (this.socket) this.socket.close();
  }

  _send(command) {
    if (this.socket) this.socket.send(JSON.stringify(command));
  }

  /** `title` null or undefined: back to the title the person set for the key. */
  setTitle(context, title, { state, target = 0 } = {}) {
    const payload = { target };
    if (title !== null && title !== undefined) payload.title = title;
    if (state !== undefined) payload.state = state;
    this._send({ event: 'setTitle', context, payload });
  }

  setState(context, state) {
    this._send({ event: 'setState', context, payload: { state } });
  }

  showOk(context) {
    this._send({ event: 'showOk', context });
  }

  showAlert(context) {
    this._send({ event: 'showAlert', context });
  }

  setSettings(context, settings) {
    this._send({ event: 'setSettings', context, payload: settings });
  }

  getGlobalSettings() {
    this._send({ event: 'getGlobalSettings', context: this.pluginUUID });
  }

  setGlobalSettings(settings) {
    this._send({ event: 'setGlobalSettings', context: this.pluginUUID, payload: settings });
  }

  sendToPropertyInspector(context, action, payload) {
    this._send({ event: 'sendToPropertyInspector', action, context, payload });
  }

  logMessage(message) {
    this._send({ event: 'logMessage', payload: { message } });
  }
}

module.exports = { StreamDeck, parseArgs };
