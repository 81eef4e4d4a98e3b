'use strict';
/**
 * Cascade's Stream Deck plugin: the entry point Stream Deck runs (`CodePath` in manifest.json).
 *
 * It registers with Stream Deck (`-port -pluginUUID -registerEvent -info`), asks for the
 * global settings (the agent URL and token), and hands every event to the `Controller` in
 * lib/actions.js, which does the work. When Stream Deck closes the connection the plugin ends;
 * Stream Deck starts it again when it needs it.
 */

const { StreamDeck, parseArgs } = require('./lib/streamdeck');
const { Controller } = require('./lib/actions');
const { Log } = require('./lib/log');

async function main(argv) {
  const log = new Log();
  const deck = new StreamDeck(parseArgs(argv));
  await deck.connect();
  log.attach(deck);
  const controller = new Controller({ deck, log });
  deck.on('message', (message) => {
    controller.handle(message).catch((err) => log.info(`${message.event} failed unexpectedly: ${err.stack || err}`));
  });
  deck.on('close', () => {
    controller.stop();
    process.exit(0);
  });
  deck.getGlobalSettings();
  log.info('plugin started');
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`Cascade: the plugin could not start: ${err.message}\n`);
  process.exit(1);
});
