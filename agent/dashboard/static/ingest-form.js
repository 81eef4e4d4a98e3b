/**
 * The ingest form: where OBS sends (kind, address, port, app, stream key) or, for a pull
 * ingest, which media server to read. Used by Set-up and by Settings (one view at a time).
 *
 * The stream key is write-only: the field is never filled in, its placeholder says whether one
 * is stored, and only a typed key is sent. Saving sends only what changed, so an unchanged
 * ingest is never restarted.
 */

import * as api from './api.js';
import { h, setText } from './dom.js';
import {
  field,
  secretField,
  numberOrNull,
  changes,
  submitting,
  clearFormErrors,
  showFieldError,
} from './forms.js';
import { announce, copyText } from './feedback.js';

const KINDS = [
  { value: 'rtmp', label: 'RTMP' },
  { value: 'srt', label: 'SRT' },
  { value: 'pull', label: 'Pull from a media server' },
];

const EDITABLE = ['kind', 'bind', 'port', 'app', 'url', 'srt_latency_ms'];

/** The form for `ingest` (as `GET /api/v1/ingest` answers); `onSaved(view)` after a save. */
export function ingestForm(ingest, { onSaved = () => {} } = {}) {
  let baseline = ingest;
  const kind = field({
    label: 'Kind',
    path: 'ingest.kind',
    options: KINDS,
    value: ingest.kind,
    hint: 'RTMP or SRT: OBS sends to Cascade. Pull: Cascade reads from your media server.',
  });
  const bind = field({
    label: 'Listen on address',
    path: 'ingest.bind',
    value: ingest.bind,
    hint: '127.0.0.1: this computer only. 0.0.0.0: every network interface.',
  });
  const port = field({
    label: 'Port',
    path: 'ingest.port',
    type: 'number',
    value: ingest.port,
    attrs: { min: 1, max: 65535, step: 1, inputmode: 'numeric' },
  });
  const app = field({
    label: 'Application name',
    path: 'ingest.app',
    value: ingest.app,
    hint: "The path after the port in OBS's server URL, e.g. live.",
  });
  const key = secretField({
    label: 'Stream key OBS must use',
    path: 'ingest.key',
    isSet: ingest.has_key,
    hint: 'Optional: with a key, only a publisher that knows it is accepted.',
  });
  const latency = field({
    label: 'SRT latency (ms)',
    path: 'ingest.srt_latency_ms',
    type: 'number',
    value: ingest.srt_latency_ms,
    attrs: { min: 1, max: 10000, step: 1, inputmode: 'numeric' },
  });
  const url = field({
    label: 'Media server URL to pull from',
    path: 'ingest.url',
    value: ingest.url,
    wide: true,
    hint: 'The RTMP, RTMPS or SRT address of the stream on your media server.',
  });

  const obsUrl = h('code', { class: 'obs-url', 'data-testid': 'obs-url' });
  const copy = h(
    'button',
    {
      type: 'button',
      class: 'button button-small',
      'data-testid': 'copy-obs-url',
      onclick: async () => {
        const ok = await copyText(obsUrl.textContent);
        announce(
          ok ? 'The OBS server URL was copied' : 'Copying failed; select the URL and copy it',
        );
      },
    },
    'Copy',
  );
  const obsKeyNote = h('p', { class: 'field-hint', 'data-testid': 'obs-key-note' });
  const obsRow = h(
    'div',
    { class: 'obs-box' },
    h(
      'div',
      { class: 'copy-row' },
      h('span', { class: 'copy-label' }, 'Server to paste into OBS (Settings → Stream)'),
      obsUrl,
      copy,
    ),
    obsKeyNote,
  );

  const save = h(
    'button',
    { type: 'submit', class: 'button button-primary', 'data-testid': 'save-ingest' },
    'Save ingest',
  );
  const clearKey = h(
    'button',
    {
      type: 'button',
      class: 'button',
      'data-testid': 'clear-ingest-key',
      onclick: (e) => send({ key: '' }, e.currentTarget, 'The ingest no longer asks for a key'),
    },
    'Remove key',
  );

  const form = h(
    'form',
    { class: 'form', 'data-testid': 'ingest-form', novalidate: true, 'aria-label': 'Ingest' },
    h('div', { class: 'field-grid' }, kind, bind, port, app, key, latency, url),
    obsRow,
    h('div', { class: 'actions' }, save, clearKey),
  );

  function showFor(value) {
    const listening = value !== 'pull';
    bind.hidden = !listening;
    port.hidden = !listening;
    app.hidden = value !== 'rtmp';
    key.hidden = value !== 'rtmp';
    latency.hidden = value !== 'srt';
    url.hidden = value !== 'pull';
    clearKey.hidden = value !== 'rtmp' || !baseline.has_key;
  }

  function showBaseline() {
    setText(obsUrl, baseline.obs_url ?? '');
    copy.hidden = baseline.kind === 'pull' || !baseline.obs_url;
    if (baseline.kind === 'pull')
      setText(obsKeyNote, 'OBS does not send to Cascade with a pull ingest.');
    else if (baseline.kind === 'srt')
      setText(obsKeyNote, 'Use this as the server in OBS; no stream key.');
    else if (baseline.has_key)
      setText(obsKeyNote, 'Stream key in OBS: the key set above (it is not shown again).');
    else setText(obsKeyNote, 'Stream key in OBS: leave it empty, or type anything.');
    key.control.value = '';
    key.control.placeholder = baseline.has_key ? 'set — type to replace' : 'not set';
    key.control.dataset.secret = baseline.has_key ? 'set' : 'unset';
    showFor(kind.control.value);
  }

  async function send(body, button, done) {
    const view = await submitting(form, button, () => api.patch('/api/v1/ingest', body), {
      context: 'The ingest was not changed',
    });
    if (!view) return;
    baseline = view;
    showBaseline();
    announce(done);
    onSaved(view);
  }

  kind.control.addEventListener('change', () => showFor(kind.control.value));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    let wanted;
    try {
      wanted = {
        kind: kind.control.value,
        bind: bind.control.value.trim(),
        port: numberOrNull(port.control),
        app: app.control.value.trim(),
        url: url.control.value.trim(),
        srt_latency_ms: numberOrNull(latency.control),
      };
    } catch (problem) {
      clearFormErrors(form);
      showFieldError(form, problem);
      return;
    }
    const before = Object.fromEntries(EDITABLE.map((k) => [k, baseline[k]]));
    const body = changes(before, wanted);
    if (key.control.value) body.key = key.control.value;
    if (!Object.keys(body).length) {
      clearFormErrors(form);
      announce('Nothing to save: the ingest is as it was');
      return;
    }
    await send(body, save, 'The ingest was saved');
  });

  showBaseline();
  return form;
}
