/**
 * Cascade's dashboard: start-up, signing in, the hash router and the event stream.
 *
 * On load the page asks `GET /api/v1/session`. Signed in, it opens the event stream (whose
 * `hello` fills the store) and shows the view the hash names: `#live` (default), `#setup`,
 * `#logs`, `#settings`. Not signed in — or whenever a request answers 401 — it shows `#login`:
 * the API token in, `POST /login`, and the session cookie does the rest. Views render from the
 * store; the only requests they make are reading what they show when they open and the
 * actions a person takes.
 */

import * as api from './api.js';
import { Store } from './store.js';
import { EventStream } from './events.js';
import { setText } from './dom.js';
import * as fmt from './format.js';
import { announce, showError, clearError, wireBanner } from './feedback.js';
import { showFieldError, clearFormErrors } from './forms.js';
import { mountLive } from './live.js';
import { mountSetup } from './setup.js';
import { mountLogs } from './logs.js';
import { mountSettings } from './settings.js';

const VIEWS = {
  live: { title: 'Live', mount: mountLive },
  setup: { title: 'Set-up', mount: mountSetup },
  logs: { title: 'Logs', mount: mountLogs },
  settings: { title: 'Settings', mount: mountSettings },
};
const VIEW_NAMES = [...Object.keys(VIEWS), 'login'];

const $ = (id) => document.getElementById(id);
const store = new Store();
let signedIn = false;
let current = null; // {name, unmount}
let wanted = 'live'; // the view to open after signing in
let firstRoute = true;

let helloSeen = false;

const events = new EventStream({
  onEvent: (event) => {
    // A hello after the first (a reconnect; maybe another profile runs now): names may differ.
    if (event.type === 'hello') {
      if (helloSeen) loadConfig();
      helloSeen = true;
    }
    store.apply(event);
  },
  onState: (state, retryIn) => store.setConnection(state, retryIn ?? null),
  checkSession: async () => {
    try {
      await api.get('/api/v1/session');
      return true;
    } catch (error) {
      return error?.status !== 401; // a 401 has already shown the sign-in form
    }
  },
});

// -- reading the agent -----------------------------------------------------------------------

let refreshing = null;
let lastUnknownRefresh = -Infinity;

/** Read the profile and the status again (after an edit, or news of an unknown id). */
function refreshAgent() {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    try {
      const [config, status] = await Promise.all([
        api.get('/api/v1/profile'),
        api.get('/api/v1/status'),
      ]);
      store.setConfig(config);
      store.setStatus(status);
    } catch (error) {
      if (error?.status !== 401 && error?.status !== 0) console.warn('refresh failed', error);
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

async function loadConfig() {
  try {
    store.setConfig(await api.get('/api/v1/profile'));
  } catch {
    // Names are a nicety on the Live view; ids are shown without them.
  }
}

// -- routing ---------------------------------------------------------------------------------

function viewFromHash() {
  const name = location.hash.replace(/^#/, '').split(/[?&]/)[0];
  return VIEW_NAMES.includes(name) ? name : null;
}

function show(name) {
  for (const view of VIEW_NAMES) $(`view-${view}`).hidden = view !== name;
  for (const link of document.querySelectorAll('#nav a[data-view]')) {
    if (link.dataset.view === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = name === 'login' ? 'Sign in — Cascade' : `${VIEWS[name].title} — Cascade`;
}

function mount(name) {
  if (current?.name === name) return;
  if (current) current.unmount?.();
  current = null;
  clearError();
  show(name);
  if (name === 'login') {
    current = { name, unmount: null };
    return;
  }
  const body = $(`view-${name}`).querySelector('.view-body');
  const unmount = VIEWS[name].mount(body, { store, refreshAgent });
  current = { name, unmount };
}

function route() {
  const name = viewFromHash();
  const focus = !firstRoute;
  firstRoute = false;
  if (!signedIn) {
    if (name && name !== 'login') wanted = name;
    showLogin({});
    return;
  }
  if (name === null || name === 'login') {
    // Unknown hashes (a typo) and #login when signed in keep the current view, or open Live.
    const keep = current && current.name !== 'login' ? current.name : 'live';
    history.replaceState(null, '', `#${keep}`);
    mount(keep);
    return;
  }
  mount(name);
  if (focus) $(`title-${name}`).focus();
}

// -- signing in and out ----------------------------------------------------------------------

function showLogin({ expired = false, ended = false }) {
  signedIn = false;
  events.stop();
  $('nav').hidden = true;
  $('logout').hidden = true;
  $('login-expired').hidden = !expired;
  $('login-ended').hidden = !ended;
  if (location.hash !== '#login') history.replaceState(null, '', `${location.pathname}#login`);
  mount('login');
  $('login-token').focus();
}

function enter() {
  signedIn = true;
  $('nav').hidden = false;
  $('logout').hidden = false;
  $('login-expired').hidden = true;
  $('login-ended').hidden = true;
  events.start();
  loadConfig();
}

api.onUnauthorized(() => {
  if (!signedIn) return;
  if (current && current.name !== 'login') wanted = current.name;
  showLogin({ ended: true });
});

async function submitLogin(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const input = $('login-token');
  const button = form.querySelector('[type="submit"]');
  clearFormErrors(form);
  const token = input.value.trim();
  if (!token) {
    showFieldError(form, {
      status: 422,
      field: 'token',
      what: 'Paste the API token first',
      hint: "The command 'cascade token' prints it.",
    });
    return;
  }
  if (button.getAttribute('aria-busy') === 'true') return;
  button.setAttribute('aria-busy', 'true');
  try {
    await api.request('POST', '/login', { token }, { expect401: true });
    input.value = '';
    enter();
    history.replaceState(null, '', `${location.pathname}#${wanted}`);
    mount(wanted);
    $(`title-${wanted}`).focus();
    announce('Signed in');
  } catch (error) {
    if (error?.status === 401) {
      showFieldError(form, {
        status: 422,
        field: 'token',
        what: 'That is not the API token',
        hint: "Run 'cascade token' on this computer and paste what it prints.",
      });
    } else {
      showFieldError(form, error);
    }
  } finally {
    button.removeAttribute('aria-busy');
  }
}

async function logout() {
  try {
    await api.request('POST', '/logout', undefined, { expect401: true });
  } catch (error) {
    if (error?.status !== 401) {
      showError(error, { context: 'Signing out failed' });
      return;
    }
  }
  wanted = current?.name && current.name !== 'login' ? current.name : 'live';
  showLogin({});
  announce('Signed out');
}

// -- what the header says ----------------------------------------------------------------------

function seconds(ms) {
  return Math.max(1, Math.round((ms ?? 0) / 1000));
}

function renderConnection() {
  const el = $('connection');
  const { state, retryIn } = store.connection;
  el.dataset.state = signedIn ? state : 'idle';
  let text = '';
  if (signedIn) {
    if (state === 'open') text = 'Connected';
    else if (state === 'connecting') text = 'Connecting…';
    else if (state === 'reconnecting')
      text = `Agent not answering; trying again in ${seconds(retryIn)} s`;
    else text = 'Not connected';
  }
  setText(el, text);
}

function renderHeader() {
  const status = store.status;
  setText($('profile-name'), status?.profile ? `Profile: ${status.profile}` : '');
  const version = store.version ?? status?.version;
  setText(
    $('footer-text'),
    `Cascade${version ? ` ${version}` : ''} runs on this computer; this page talks only to it.`,
  );
}

/** State changes said aloud (politely); figures are not. */
function announceChange(change) {
  switch (change.kind) {
    case 'connection':
      renderConnection();
      if (!signedIn) return;
      if (change.state === 'reconnecting' && change.old === 'open') {
        announce('Lost the connection to the agent; trying again');
      } else if (change.state === 'open' && change.old !== 'open' && change.old !== 'closed') {
        announce('Connected to the agent');
      }
      return;
    case 'status':
      renderHeader();
      return;
    case 'ingest':
      if (change.old !== change.state)
        announce(`Ingest: ${fmt.stateLabel(change.state).toLowerCase()}`);
      return;
    case 'group':
      if (change.old !== change.state) {
        announce(`Group ${change.id}: ${fmt.stateLabel(change.state).toLowerCase()}`);
      }
      return;
    case 'target':
      if (change.old !== change.state) {
        const why =
          change.reason && ['retrying', 'failed'].includes(change.state)
            ? ` (${change.reason})`
            : '';
        announce(`Target ${change.id}: ${fmt.stateLabel(change.state).toLowerCase()}${why}`);
      }
      return;
    case 'alert':
      announce(`Problem: ${change.alert.message}`);
      return;
    case 'unknown':
      // Something was added elsewhere (the CLI, another page): read the agent again, but not
      // more than once in a few seconds, however many events name it.
      if (performance.now() - lastUnknownRefresh > 5000) {
        lastUnknownRefresh = performance.now();
        refreshAgent();
      }
      return;
    default:
  }
}

// -- start -----------------------------------------------------------------------------------

async function boot() {
  wireBanner();
  store.subscribe(announceChange);
  $('login-form').addEventListener('submit', submitLogin);
  $('logout').addEventListener('click', logout);
  $('skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    const heading = current ? $(`title-${current.name}`) : null;
    (heading ?? $('main')).focus();
  });
  window.addEventListener('hashchange', route);

  const params = new URLSearchParams(location.search);
  const cameFromLink = location.hash === '#login' || params.has('expired');
  if (params.has('expired')) history.replaceState(null, '', `${location.pathname}${location.hash}`);

  let session = null;
  try {
    session = await api.get('/api/v1/session', { expect401: true });
  } catch (error) {
    if (error?.status !== 401) showError(error);
  }
  renderConnection();
  if (session?.authenticated) {
    enter();
    if (cameFromLink) {
      // The link was used up, but this browser is still signed in: carry on.
      history.replaceState(null, '', `${location.pathname}#live`);
    }
    route();
  } else {
    const name = viewFromHash();
    if (name && name !== 'login') wanted = name;
    firstRoute = false;
    showLogin({ expired: cameFromLink });
  }
}

boot();
