/**
 * The Live view: the ingest, every group and target with its figures, and the controls.
 *
 * Built once from the store and then updated in place as events arrive, so a button keeps
 * focus while its card changes; only a change of which groups and targets exist builds the
 * cards again. Uptimes are counted on once a second from the last figures (no request).
 */

import * as api from './api.js';
import { h, setText, focusKey, restoreFocus } from './dom.js';
import * as fmt from './format.js';
import { Sparkline } from './sparkline.js';
import { announce, showError, clearError, confirmAction, copyText } from './feedback.js';

export function mountLive(root, { store }) {
  const cards = new Map(); // group id → GroupCard
  let structure = null;

  const toolbar = h(
    'div',
    { class: 'toolbar' },
    h(
      'div',
      { class: 'toolbar-actions' },
      h(
        'button',
        {
          type: 'button',
          class: 'button button-primary',
          'data-testid': 'start-all',
          onclick: startAll,
        },
        'Start all',
      ),
      h(
        'button',
        { type: 'button', class: 'button', 'data-testid': 'stop-all', onclick: stopAll },
        'Stop all',
      ),
    ),
    h('p', { class: 'totals', 'data-testid': 'totals' }),
  );
  const problem = h('p', { class: 'notice notice-bad', 'data-testid': 'problem', hidden: true });
  const alerts = h('ul', {
    class: 'alerts',
    'data-testid': 'alerts',
    'aria-label': 'Recent problems',
  });
  const ingest = new IngestCard();
  const groups = h('div', { class: 'groups', 'data-testid': 'groups' });
  const waiting = h(
    'p',
    { class: 'muted', 'data-testid': 'live-waiting' },
    'Connecting to the agent…',
  );
  root.replaceChildren(waiting, toolbar, problem, alerts, ingest.el, groups);

  async function startAll(event) {
    await act(
      event.currentTarget,
      () => api.post('/api/v1/start-all'),
      (status) => {
        store.setStatus(status);
        announce('Start all: every group was asked to go live');
      },
    );
  }

  async function stopAll(event) {
    const button = event.currentTarget;
    const live = store.status?.groups?.some((g) => g.live);
    if (live) {
      const ok = await confirmAction({
        title: 'Stop every group?',
        text: 'Every platform stops receiving the stream now. OBS keeps streaming to Cascade.',
        confirm: 'Stop all',
      });
      if (!ok) return;
    }
    await act(
      button,
      () => api.post('/api/v1/stop-all'),
      (status) => {
        store.setStatus(status);
        announce('Stop all: every group was stopped');
      },
    );
  }

  function render() {
    const status = store.status;
    waiting.hidden = Boolean(status);
    toolbar.hidden = !status;
    ingest.el.hidden = !status;
    if (!status) return;
    const shape = JSON.stringify(
      (status.groups ?? []).map((g) => [g.id, (g.targets ?? []).map((t) => t.id)]),
    );
    if (shape !== structure) {
      const key = focusKey(root);
      structure = shape;
      cards.clear();
      const built = (status.groups ?? []).map((g) => {
        const card = new GroupCard(g.id, store);
        cards.set(g.id, card);
        return card.el;
      });
      if (!built.length) {
        built.push(
          h(
            'p',
            { class: 'empty', 'data-testid': 'no-groups' },
            'No output groups yet. Add one under ',
            h('a', { href: '#setup' }, 'Set-up'),
            '.',
          ),
        );
      }
      groups.replaceChildren(...built);
      restoreFocus(root, key);
    }
    for (const card of cards.values()) card.update();
    ingest.update(status.ingest, store.config?.ingest);
    renderTotals();
    renderProblem();
    renderAlerts();
  }

  function renderTotals() {
    if (!store.status) return;
    const t = store.totals();
    const parts = [`${t.targets_live} of ${t.targets} targets live`];
    if (t.targets_failing) parts.push(`${t.targets_failing} failing`);
    parts.push(`sending ${fmt.bitrate(t.bitrate_kbps)} in all`);
    setText(toolbar.querySelector('.totals'), parts.join(' · '));
  }

  function renderProblem() {
    const text = store.status?.problem ?? '';
    problem.hidden = !text;
    setText(problem, text);
  }

  function renderAlerts() {
    const items = store.alerts.map((alert, index) =>
      h(
        'li',
        { class: 'alert', 'data-testid': 'alert', 'data-source': alert.source },
        h(
          'div',
          { class: 'alert-text' },
          h('strong', {}, alert.source ? `${alert.source}: ` : ''),
          sentence(alert.message),
          alert.hint ? h('span', { class: 'alert-hint' }, ` ${sentence(alert.hint)}`) : null,
        ),
        h(
          'button',
          {
            type: 'button',
            class: 'button button-quiet button-small',
            'data-testid': `dismiss-alert-${index}`,
            onclick: () => store.dismissAlert(index),
          },
          'Dismiss',
        ),
      ),
    );
    const key = focusKey(alerts);
    alerts.replaceChildren(...items);
    alerts.hidden = !items.length;
    restoreFocus(alerts, key);
  }

  const unsubscribe = store.subscribe((change) => {
    switch (change.kind) {
      case 'group':
      case 'stats':
        if (!store.status) return;
        cards.get(change.id)?.update();
        renderTotals();
        return;
      case 'target': {
        cards.get(change.group)?.update();
        renderTotals();
        return;
      }
      case 'ingest':
        ingest.update(store.status?.ingest, store.config?.ingest);
        return;
      case 'alert':
      case 'alerts':
        renderAlerts();
        return;
      case 'status':
      case 'config':
        render();
        return;
      default:
    }
  });

  // Uptime moves every second between stats events: recount it from what is already known.
  const ticker = setInterval(() => {
    for (const card of cards.values()) card.tick();
  }, 1000);

  render();
  return () => {
    clearInterval(ticker);
    unsubscribe();
  };
}

/** Run a live action from `button`: busy while it runs, the answer applied, errors shown. */
async function act(button, request, apply) {
  if (button.getAttribute('aria-busy') === 'true') return;
  button.setAttribute('aria-busy', 'true');
  try {
    const answer = await request();
    clearError();
    apply(answer);
  } catch (error) {
    if (error?.status !== 401) showError(error);
  } finally {
    button.removeAttribute('aria-busy');
  }
}

function sentence(text) {
  const t = String(text ?? '').trim();
  return !t || /[.!?]$/.test(t) ? t : `${t}.`;
}

function badge(testid) {
  return h('span', { class: 'badge', 'data-testid': testid });
}

function setBadge(el, state) {
  setText(el, fmt.stateLabel(state));
  el.dataset.tone = fmt.tone(state);
  el.dataset.state = state ?? '';
}

function figure(label, testid) {
  const value = h('dd', { 'data-testid': testid }, fmt.UNKNOWN);
  return { el: h('div', { class: 'figure' }, h('dt', {}, label), value), value };
}

class IngestCard {
  constructor() {
    this.badge = badge('ingest-state');
    this.reason = h('p', { class: 'reason', 'data-testid': 'ingest-reason' });
    this.video = figure('Video', 'ingest-video');
    this.resolution = figure('Resolution', 'ingest-resolution');
    this.fps = figure('Frame rate', 'ingest-fps');
    this.audio = figure('Audio', 'ingest-audio');
    this.bitrate = figure('Bitrate in', 'ingest-bitrate');
    this.url = h('code', { class: 'obs-url', 'data-testid': 'ingest-url' });
    this.keyNote = h('p', { class: 'field-hint', 'data-testid': 'ingest-key-note' });
    this.copy = h(
      'button',
      {
        type: 'button',
        class: 'button button-small',
        'data-testid': 'copy-ingest-url',
        onclick: async () => {
          const ok = await copyText(this.url.textContent);
          announce(
            ok ? 'The OBS server URL was copied' : 'Copying failed; select the URL and copy it',
          );
        },
      },
      'Copy',
    );
    this.el = h(
      'article',
      { class: 'card ingest-card', 'data-testid': 'ingest', 'aria-labelledby': 'ingest-title' },
      h(
        'header',
        { class: 'card-head' },
        h('h2', { id: 'ingest-title' }, 'Ingest from OBS'),
        this.badge,
      ),
      this.reason,
      h(
        'dl',
        { class: 'figures' },
        this.video.el,
        this.resolution.el,
        this.fps.el,
        this.audio.el,
        this.bitrate.el,
      ),
      h(
        'div',
        { class: 'copy-row' },
        h('span', { class: 'copy-label' }, 'Server for OBS'),
        this.url,
        this.copy,
      ),
      this.keyNote,
    );
  }

  update(ingest, config) {
    if (!ingest) return;
    setBadge(this.badge, ingest.state);
    this.el.dataset.state = ingest.state ?? '';
    setText(this.reason, ingest.reason ?? '');
    this.reason.hidden = !ingest.reason;
    const s = ingest.stream ?? {};
    setText(this.video.value, s.video_codec ?? fmt.UNKNOWN);
    setText(this.resolution.value, fmt.resolution(s.width, s.height));
    setText(this.fps.value, fmt.fps(s.fps));
    setText(this.audio.value, s.audio_codec ?? fmt.UNKNOWN);
    // A measured input rate is only news when it keeps coming (stats that carry the ingest's
    // figures); otherwise the rate OBS announces in its metadata is the steadier figure, and the
    // rate measured when the stream began the last resort.
    const measured = ingest.bitrate_kbps ?? s.input_bitrate_kbps;
    const nominal =
      s.video_bitrate_kbps || s.audio_bitrate_kbps
        ? (s.video_bitrate_kbps ?? 0) + (s.audio_bitrate_kbps ?? 0)
        : null;
    const shown = ingest.measuredLive ? measured : (nominal ?? measured);
    setText(this.bitrate.value, ingest.state === 'receiving' ? fmt.bitrate(shown) : fmt.UNKNOWN);
    setText(this.url, ingest.url ?? config?.obs_url ?? '');
    const kind = ingest.kind ?? config?.kind;
    this.copy.hidden = kind === 'pull' || !this.url.textContent;
    if (kind === 'pull') setText(this.keyNote, 'Cascade pulls the stream from this address.');
    else if (config?.has_key)
      setText(this.keyNote, 'OBS also needs the stream key you set for the ingest (Set-up).');
    else if (config) setText(this.keyNote, 'Leave the stream key in OBS empty.');
    else setText(this.keyNote, '');
    this.keyNote.hidden = !this.keyNote.textContent;
  }
}

class GroupCard {
  constructor(id, store) {
    this.id = id;
    this.store = store;
    this.rows = new Map();
    const group = store.group(id);
    const titleId = `group-title-${id}`;
    this.badge = badge(`group-state-${id}`);
    this.title = h('h2', { id: titleId });
    this.mode = h('p', { class: 'mode', 'data-testid': `group-mode-${id}` });
    this.reason = h('p', { class: 'reason', 'data-testid': `group-reason-${id}` });
    this.bitrate = figure('Sending', `group-bitrate-${id}`);
    this.targetsLive = figure('Targets live', `group-targets-live-${id}`);
    this.encoderFps = figure('Encoder fps', `group-encoder-fps-${id}`);
    this.encoderSpeed = figure('Encoder speed', `group-encoder-speed-${id}`);
    this.encoderError = h('p', { class: 'error-text', 'data-testid': `group-encoder-error-${id}` });
    this.armButton = h(
      'button',
      {
        type: 'button',
        class: 'button',
        'data-testid': `arm-group-${id}`,
        'aria-pressed': 'false',
        title: 'An armed group goes live by itself when OBS starts streaming',
        onclick: (e) => this.action(e.currentTarget, this.group()?.armed ? 'disarm' : 'arm'),
      },
      'Arm',
    );
    const targets = (group?.targets ?? []).map((t) => {
      const row = new TargetRow(t.id, store);
      this.rows.set(t.id, row);
      return row.el;
    });
    this.el = h(
      'article',
      { class: 'card group-card', 'data-testid': `group-${id}`, 'aria-labelledby': titleId },
      h('header', { class: 'card-head' }, this.title, this.badge),
      this.mode,
      this.reason,
      h(
        'div',
        { class: 'actions', role: 'group', 'aria-label': `Controls of group ${id}` },
        h(
          'button',
          {
            type: 'button',
            class: 'button button-primary',
            'data-testid': `start-group-${id}`,
            onclick: (e) => this.action(e.currentTarget, 'start'),
          },
          'Start',
        ),
        h(
          'button',
          {
            type: 'button',
            class: 'button',
            'data-testid': `stop-group-${id}`,
            onclick: (e) => this.action(e.currentTarget, 'stop'),
          },
          'Stop',
        ),
        this.armButton,
      ),
      h(
        'dl',
        { class: 'figures' },
        this.bitrate.el,
        this.targetsLive.el,
        this.encoderFps.el,
        this.encoderSpeed.el,
      ),
      this.encoderError,
      targets.length
        ? h('ul', { class: 'targets', 'aria-label': `Targets of group ${id}` }, targets)
        : h('p', { class: 'empty' }, 'No targets in this group yet.'),
    );
  }

  group() {
    return this.store.group(this.id);
  }

  async action(button, verb) {
    await act(
      button,
      () => api.post(api.path('groups', this.id, verb)),
      (view) => {
        const before = this.group();
        const unchanged = before?.state === view.state && before?.armed === view.armed;
        this.store.mergeGroup(view); // a changed state is announced with the store's news
        if (unchanged) announce(`Group ${this.id} is ${fmt.stateLabel(view.state).toLowerCase()}`);
        else if (verb === 'arm' || verb === 'disarm') {
          announce(`Group ${this.id} ${verb === 'arm' ? 'is armed' : 'is no longer armed'}`);
        }
      },
    );
  }

  update() {
    const g = this.group();
    if (!g) return;
    const config = this.store.groupConfig(this.id);
    setText(this.title, g.name && g.name !== g.id ? `${g.name} (${g.id})` : g.id);
    setBadge(this.badge, g.state);
    this.el.dataset.state = g.state ?? '';
    this.el.dataset.armed = String(Boolean(g.armed));
    setText(this.mode, modeText(g, config));
    setText(this.reason, g.reason ?? '');
    this.reason.hidden = !g.reason;
    setText(this.bitrate.value, fmt.bitrate(g.bitrate_kbps));
    setText(this.targetsLive.value, `${g.targets_live ?? 0} of ${(g.targets ?? []).length}`);
    const encoder = g.encoder;
    this.encoderFps.el.hidden = !encoder;
    this.encoderSpeed.el.hidden = !encoder;
    if (encoder) {
      setText(this.encoderFps.value, fmt.fps(encoder.fps));
      setText(
        this.encoderSpeed.value,
        encoder.speed === null || encoder.speed === undefined ? fmt.UNKNOWN : `${encoder.speed}×`,
      );
    }
    setText(this.encoderError, encoder?.last_error ? `Encoder: ${encoder.last_error}` : '');
    this.encoderError.hidden = !encoder?.last_error;
    setText(this.armButton, g.armed ? 'Disarm' : 'Arm');
    this.armButton.setAttribute('aria-pressed', String(Boolean(g.armed)));
    for (const row of this.rows.values()) row.update();
  }

  tick() {
    for (const row of this.rows.values()) row.tick();
  }
}

function modeText(group, config) {
  if (group.mode !== 'reencode') return 'Passthrough: the source as OBS sends it';
  const v = config?.video;
  if (!v) return 'Re-encode';
  const size =
    v.width && v.height ? `${v.width}×${v.height}` : v.height ? `${v.height}p` : 'source size';
  const rate = v.fps ? `${v.fps} fps` : 'source fps';
  return `Re-encode: ${v.codec}, ${size}, ${rate}, ${fmt.bitrate(v.bitrate_kbps)}`;
}

class TargetRow {
  constructor(id, store) {
    this.id = id;
    this.store = store;
    const nameId = `target-name-${id}`;
    this.name = h('strong', { id: nameId });
    this.destination = h('span', {
      class: 'destination',
      'data-testid': `target-destination-${id}`,
    });
    this.badge = badge(`target-state-${id}`);
    this.switch = h(
      'button',
      {
        type: 'button',
        class: 'switch',
        role: 'switch',
        'aria-checked': 'false',
        'aria-label': `Send to ${id}`,
        'data-testid': `toggle-target-${id}`,
        onclick: (e) => this.toggle(e.currentTarget),
      },
      h(
        'span',
        { class: 'switch-track', 'aria-hidden': 'true' },
        h('span', { class: 'switch-thumb' }),
      ),
    );
    this.bitrate = figure('Bitrate', `target-bitrate-${id}`);
    this.fps = figure('FPS', `target-fps-${id}`);
    this.dropped = figure('Dropped', `target-dropped-${id}`);
    this.uptime = figure('Uptime', `target-uptime-${id}`);
    this.retries = figure('Retries', `target-retries-${id}`);
    this.spark = new Sparkline(id);
    this.reason = h('p', { class: 'reason', 'data-testid': `target-reason-${id}` });
    this.error = h('p', { class: 'error-text', 'data-testid': `target-error-${id}` });
    this.el = h(
      'li',
      { class: 'target', 'data-testid': `target-${id}`, 'aria-labelledby': nameId },
      h(
        'div',
        { class: 'target-head' },
        this.switch,
        h('div', { class: 'target-name' }, this.name, ' ', this.destination),
        this.badge,
      ),
      h(
        'div',
        { class: 'target-body' },
        h(
          'dl',
          { class: 'figures figures-compact' },
          this.bitrate.el,
          this.fps.el,
          this.dropped.el,
          this.uptime.el,
          this.retries.el,
        ),
        h(
          'div',
          { class: 'spark-box' },
          h('span', { class: 'spark-caption', 'aria-hidden': 'true' }, 'Last 5 min'),
          this.spark.el,
        ),
      ),
      this.reason,
      this.error,
    );
  }

  target() {
    return this.store.target(this.id)?.target ?? null;
  }

  async toggle(button) {
    await act(
      button,
      () => api.post(api.path('targets', this.id, 'toggle')),
      (view) => {
        const unchanged = this.target()?.state === view.state;
        this.store.mergeTarget(view); // a changed state is announced with the store's news
        if (unchanged) announce(`Target ${this.id} switched ${view.enabled ? 'on' : 'off'}`);
      },
    );
  }

  update() {
    const t = this.target();
    if (!t) return;
    const config = this.store.targetConfig(this.id);
    const label = config?.name && config.name !== t.id ? `${config.name} (${t.id})` : t.id;
    setText(this.name, label);
    setText(this.destination, t.destination ?? '');
    this.switch.setAttribute('aria-checked', String(Boolean(t.enabled)));
    this.switch.setAttribute('aria-label', `Send to ${label}`);
    setBadge(this.badge, t.state);
    this.el.dataset.state = t.state ?? '';
    this.el.dataset.enabled = String(Boolean(t.enabled));
    const sending = t.state === 'live';
    setText(this.bitrate.value, sending ? fmt.bitrate(t.bitrate_kbps) : fmt.UNKNOWN);
    setText(this.fps.value, sending ? fmt.fps(t.fps) : fmt.UNKNOWN);
    setText(this.dropped.value, fmt.count(t.dropped_frames));
    setText(this.retries.value, fmt.count(t.retries));
    this.tick();
    const troubled = ['retrying', 'failed', 'waiting', 'connecting'].includes(t.state);
    setText(this.reason, troubled ? (t.reason ?? '') : '');
    this.reason.hidden = !this.reason.textContent;
    setText(this.error, t.last_error ? `Last error: ${t.last_error}` : '');
    this.error.hidden = !t.last_error;
    this.spark.update(this.store.history.get(this.id));
  }

  tick() {
    const t = this.target();
    if (!t) return;
    setText(
      this.uptime.value,
      t.state === 'live' ? fmt.duration(this.store.uptime(t)) : fmt.UNKNOWN,
    );
  }
}
