'use strict';
/**
 * The plugin's log: each line goes to stderr and to Stream Deck's own log (`logMessage`).
 * Known secrets (the API token) are replaced by `***` before a line leaves the plugin, so a
 * message that quotes a request or an error can never carry them.
 */

class Log {
  /** @param {{write?: (line: string) => void}} options  `write` replaces stderr (tests) */
  constructor({ write = (line) => process.stderr.write(`${line}\n`) } = {}) {
    this.write = write;
    this.deck = null;
    this.secrets = new Set();
  }

  /** Also send lines to Stream Deck's log, once the connection is there. */
  attach(deck) {
    this.deck = deck;
  }

  secret(value) {
    if (value && String(value).length >= 4) this.secrets.add(String(value));
  }

  redact(text) {
    let out = String(text);
    for (const secret of this.secrets) out = out.split(secret).join('***');
    return out;
  }

  info(message) {
    const line = this.redact(`Cascade: ${message}`);
    this.write(line);
    if (this.deck) this.deck.logMessage(line);
  }
}

module.exports = { Log };
