'use strict';
/**
 * Cascade's local REST API, as the plugin uses it: the status and the four key operations.
 *
 * Every call sends the token in `Authorization: Bearer`, never in a URL, so no address the
 * plugin logs can hold it. One error class, `AgentError`, with a `kind` that tells a key
 * what to show:
 *
 *     AgentError
 *       kind 'setup'        no token yet, or an agent URL that is not http(s)://host:port
 *       kind 'unreachable'  nothing answered (the agent is not running, a wrong port, a timeout)
 *       kind 'refused'      the agent answered with an error: `status`, `code` and its message
 *                           (401 a wrong token, 404 no such group or target, 409 not possible now)
 */

const DEFAULT_AGENT_URL = 'http://127.0.0.1:47830';
const API = '/api/v1';

class AgentError extends Error {
  constructor(kind, message, { status = null, code = null, cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = 'AgentError';
    this.kind = kind;
    this.status = status;
    this.code = code;
  }
}

/**
 * The agent's base URL (`http://host:port`, no path) from what a person typed; an empty value
 * means the default. Throws an `AgentError` of kind 'setup' for anything else.
 */
function normaliseAgentUrl(value) {
  const text = String(value ?? '').trim() || DEFAULT_AGENT_URL;
  let url;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`);
  } catch {
    throw new AgentError('setup', `'${text}' is not an address; use e.g. ${DEFAULT_AGENT_URL}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new AgentError('setup', `the agent URL must start with http://, e.g. ${DEFAULT_AGENT_URL}`);
  }
  if (url.username || url.password || (url.pathname !== '/' && url.pathname !== '') || url.search) {
    throw new AgentError('setup', `the agent URL is only scheme, host and port, e.g. ${DEFAULT_AGENT_URL}`);
  }
  return `${url.protocol}//${url.host}`;
}

/** Why a fetch failed, in words (the error's cause holds the system code). */
function describeFailure(err) {
  const cause = err && err.cause;
  if (err && (err.name === 'TimeoutError' || err.name === 'AbortError')) return 'no answer in time';
  if (cause && cause.code === 'ECONNREFUSED') return 'connection refused';
  if (cause && cause.code) return cause.code;
  return (err && err.message) || String(err);
}

class AgentClient {
  /**
   * @param {{url?: string, token?: string, timeoutMs?: number}} options
   */
  constructor({ url, token, timeoutMs = 5000 } = {}) {
    this.url = normaliseAgentUrl(url);
    this.token = token ? String(token).trim() : '';
    this.timeoutMs = timeoutMs;
  }

  /** The WebSocket address of the agent's event stream. */
  get eventsUrl() {
    return `${this.url.replace(/^http/, 'ws')}${API}/events`;
  }

  /** Headers every call carries (the token is here, never in the URL). */
  get headers() {
    return { Authorization: `Bearer ${this.token}` };
  }

  /** One call: the answer's JSON, or an `AgentError`. */
  async request(method, path) {
    if (!this.token) {
      throw new AgentError('setup', "no API token is set: paste the output of 'cascade token' in the key's settings");
    }
    let answer;
    try {
      answer = await fetch(`${this.url}${API}${path}`, {
        method,
        headers: this.headers,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new AgentError(
        'unreachable',
        `Cascade is not reachable at ${this.url} (${describeFailure(err)}): is the agent running?`,
        { cause: err },
      );
    }
    const text = await answer.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!answer.ok) {
      const error = (body && body.error) || {};
      const message = error.message || `HTTP ${answer.status}`;
      throw new AgentError('refused', `${method} ${API}${path}: ${message}`, {
        status: answer.status,
        code: error.code || null,
      });
    }
    return body;
  }

  status() {
    return this.request('GET', '/status');
  }

  toggleGroup(id) {
    return this.request('POST', `/groups/${encodeURIComponent(id)}/toggle`);
  }

  toggleTarget(id) {
    return this.request('POST', `/targets/${encodeURIComponent(id)}/toggle`);
  }

  startAll() {
    return this.request('POST', '/start-all');
  }

  stopAll() {
    return this.request('POST', '/stop-all');
  }
}

module.exports = { AgentClient, AgentError, DEFAULT_AGENT_URL, normaliseAgentUrl, describeFailure };
