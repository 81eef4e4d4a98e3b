/**
 * The Settings view: the ingest with the address for OBS, the API token (reveal, copy,
 * rotate), the agent's own settings (launch at login, notifications, FFmpeg binary) and the
 * encoder probe with a Re-probe button.
 *
 * The token is read only when the person asks to see or copy it (`GET /api/v1/token`), and
 * forgotten when the view closes.
 */

import * as api from './api.js';
import { h, setText } from './dom.js';
import * as fmt from './format.js';
import { field, changes, submitting, clearFormErrors } from './forms.js';
import { announce, showError, clearError, confirmAction, copyText } from './feedback.js';
import { ingestForm } from './ingest-form.js';

const HIDDEN_TOKEN = '•'.repeat(32);

export function mountSettings(root, { refreshAgent }) {
  let alive = true;
  let token = null;

  const ingestBox = h('div', {}, h('p', { class: 'muted' }, 'Reading the ingest…'));
  const tokenSection = buildTokenSection();
  const settingsBox = h('div', {}, h('p', { class: 'muted' }, 'Reading the settings…'));
  const encodersBox = h('div', { 'data-testid': 'encoders' });
  const reprobe = h(
    'button',
    { type: 'button', class: 'button', 'data-testid': 'reprobe', onclick: runProbe },
    'Re-probe FFmpeg',
  );

  root.replaceChildren(
    h(
      'section',
      {
        class: 'card',
        'data-testid': 'settings-ingest',
        'aria-labelledby': 'settings-ingest-title',
      },
      h('h2', { id: 'settings-ingest-title' }, 'Ingest: where OBS sends'),
      ingestBox,
    ),
    tokenSection.el,
    h(
      'section',
      { class: 'card', 'data-testid': 'settings-agent', 'aria-labelledby': 'settings-agent-title' },
      h('h2', { id: 'settings-agent-title' }, 'Agent'),
      settingsBox,
    ),
    h(
      'section',
      {
        class: 'card',
        'data-testid': 'settings-encoders',
        'aria-labelledby': 'settings-encoders-title',
      },
      h('h2', { id: 'settings-encoders-title' }, 'FFmpeg and encoders'),
      h(
        'p',
        { class: 'muted' },
        'Cascade offers an encoder only after a one-frame test encode with it worked on ' +
          'this computer.',
      ),
      h('div', { class: 'actions' }, reprobe),
      encodersBox,
    ),
  );

  // -- the ingest ------------------------------------------------------------------------

  async function loadIngest() {
    try {
      const ingest = await api.get('/api/v1/ingest');
      if (!alive) return;
      ingestBox.replaceChildren(ingestForm(ingest, { onSaved: () => refreshAgent() }));
    } catch (error) {
      if (!alive || error?.status === 401) return;
      ingestBox.replaceChildren(
        h('p', { class: 'notice notice-bad' }, 'The ingest could not be read.'),
      );
      showError(error, { context: 'The ingest could not be read' });
    }
  }

  // -- the token -------------------------------------------------------------------------

  function buildTokenSection() {
    const value = h(
      'code',
      { class: 'token', 'data-testid': 'token-value', 'data-revealed': 'false' },
      HIDDEN_TOKEN,
    );
    const reveal = h(
      'button',
      {
        type: 'button',
        class: 'button',
        'data-testid': 'reveal-token',
        'aria-pressed': 'false',
        onclick: toggleReveal,
      },
      'Reveal',
    );
    const copy = h(
      'button',
      { type: 'button', class: 'button', 'data-testid': 'copy-token', onclick: copyToken },
      'Copy',
    );
    const rotate = h(
      'button',
      {
        type: 'button',
        class: 'button button-danger',
        'data-testid': 'rotate-token',
        onclick: rotateToken,
      },
      'Rotate…',
    );
    const el = h(
      'section',
      { class: 'card', 'data-testid': 'settings-token', 'aria-labelledby': 'settings-token-title' },
      h('h2', { id: 'settings-token-title' }, 'API token'),
      h(
        'p',
        { class: 'muted' },
        'OBS scripts, Stream Deck buttons and Companion send this token with each request. ',
        'Rotating it makes every one of them stop working until given the new one; ' +
          'this page stays signed in.',
      ),
      h(
        'div',
        { class: 'copy-row' },
        h('span', { class: 'copy-label', id: 'token-label' }, 'Token'),
        value,
      ),
      h('div', { class: 'actions' }, reveal, copy, rotate),
    );

    async function fetchToken() {
      if (token === null) {
        const answer = await api.get('/api/v1/token');
        token = answer?.token ?? '';
      }
      return token;
    }

    async function toggleReveal() {
      const showing = value.dataset.revealed === 'true';
      if (showing) {
        hide();
        return;
      }
      try {
        const t = await fetchToken();
        if (!alive) return;
        setText(value, t);
        value.dataset.revealed = 'true';
        reveal.setAttribute('aria-pressed', 'true');
        setText(reveal, 'Hide');
        clearError();
      } catch (error) {
        if (error?.status !== 401) showError(error, { context: 'The token could not be read' });
      }
    }

    function hide() {
      setText(value, HIDDEN_TOKEN);
      value.dataset.revealed = 'false';
      reveal.setAttribute('aria-pressed', 'false');
      setText(reveal, 'Reveal');
    }

    async function copyToken() {
      try {
        const t = await fetchToken();
        const ok = await copyText(t);
        announce(ok ? 'The API token was copied' : 'Copying failed; reveal the token and copy it');
      } catch (error) {
        if (error?.status !== 401) showError(error, { context: 'The token could not be read' });
      }
    }

    async function rotateToken(event) {
      const button = event.currentTarget;
      const ok = await confirmAction({
        title: 'Rotate the API token?',
        text:
          'A new token replaces the current one at once. OBS scripts, Stream Deck buttons and ' +
          'Companion keep failing until you give them the new token.',
        confirm: 'Rotate token',
      });
      if (!ok) return;
      button.setAttribute('aria-busy', 'true');
      try {
        await api.post('/api/v1/token/rotate');
        token = null;
        const wasShown = value.dataset.revealed === 'true';
        hide();
        if (wasShown) await toggleReveal();
        announce('The API token was replaced; the old one no longer works');
        clearError();
      } catch (error) {
        if (error?.status !== 401) showError(error, { context: 'The token was not rotated' });
      } finally {
        button.removeAttribute('aria-busy');
      }
    }

    return { el };
  }

  // -- the agent's settings --------------------------------------------------------------

  async function loadSettings() {
    let settings;
    try {
      settings = await api.get('/api/v1/settings');
    } catch (error) {
      if (!alive || error?.status === 401) return;
      settingsBox.replaceChildren(
        h('p', { class: 'notice notice-bad' }, 'The settings could not be read.'),
      );
      showError(error, { context: 'The settings could not be read' });
      return;
    }
    if (!alive) return;
    settingsBox.replaceChildren(settingsForm(settings));
  }

  function settingsForm(initial) {
    let baseline = initial;
    const autostartInfo = initial.autostart ?? { supported: false, enabled: false, detail: '' };
    const autostart = field({
      label: 'Launch Cascade when I log in',
      path: 'autostart',
      type: 'checkbox',
      value: autostartInfo.enabled,
      hint: autostartInfo.detail || '',
      attrs: { disabled: !autostartInfo.supported },
    });
    const notifications = field({
      label: 'Show desktop notifications (a target failed, OBS stopped, …)',
      path: 'notifications',
      type: 'checkbox',
      value: initial.notifications,
    });
    const ffmpeg = field({
      label: 'FFmpeg binary',
      path: 'ffmpeg',
      value: initial.ffmpeg ?? '',
      wide: true,
      placeholder: 'the bundled FFmpeg',
      hint:
        'Leave empty to use the FFmpeg that comes with Cascade. ' +
        'Another one must be FFmpeg 5 or newer.',
    });
    const inUse = h('p', { class: 'field-hint', 'data-testid': 'ffmpeg-in-use' });
    const api_ = h('p', { class: 'muted', 'data-testid': 'api-address' });
    const save = h(
      'button',
      { type: 'submit', class: 'button button-primary', 'data-testid': 'save-settings' },
      'Save settings',
    );
    const form = h(
      'form',
      {
        class: 'form',
        'data-testid': 'settings-form',
        novalidate: true,
        'aria-label': 'Agent settings',
      },
      h('div', { class: 'field-stack' }, autostart, notifications),
      h('div', { class: 'field-grid' }, ffmpeg),
      inUse,
      api_,
      h('div', { class: 'actions' }, save),
    );

    function show() {
      const used = baseline.ffmpeg_in_use;
      setText(
        inUse,
        used
          ? `In use: ${used.path ?? 'unknown'}${used.version ? ` (version ${used.version})` : ''}`
          : 'No FFmpeg is in use.',
      );
      const address = `${baseline.api_bind ?? '127.0.0.1'}:${baseline.api_port ?? location.port}`;
      setText(
        api_,
        `The API and this page answer on ${address}; ` +
          'changing that needs a restart with cascade run --port.',
      );
    }
    show();

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const wanted = {
        notifications: notifications.control.checked,
        ffmpeg: ffmpeg.control.value.trim() || null,
      };
      const before = { notifications: baseline.notifications, ffmpeg: baseline.ffmpeg ?? null };
      const body = changes(before, wanted);
      if (
        autostartInfo.supported &&
        autostart.control.checked !== Boolean(baseline.autostart?.enabled)
      ) {
        body.autostart = autostart.control.checked;
      }
      if (!Object.keys(body).length) {
        clearFormErrors(form);
        announce('Nothing to save: the settings are as they were');
        return;
      }
      const view = await submitting(form, save, () => api.patch('/api/v1/settings', body), {
        context: 'The settings were not changed',
      });
      if (!view) return;
      baseline = view;
      show();
      announce('The settings were saved');
      if ('ffmpeg' in body) loadEncoders();
    });
    return form;
  }

  // -- encoders --------------------------------------------------------------------------

  function encodersTable(answer) {
    const rows = [
      ...(answer?.video ?? []).map((e) => ({ ...e, kind: 'Video' })),
      ...(answer?.audio ?? []).map((e) => ({ ...e, kind: 'Audio' })),
    ];
    const ffmpegInfo = answer?.ffmpeg;
    return [
      h(
        'p',
        { class: 'muted', 'data-testid': 'probe-info' },
        ffmpegInfo?.path ? `FFmpeg ${ffmpegInfo.version ?? ''} at ${ffmpegInfo.path}. ` : '',
        answer?.probed_at ? `Probed ${fmt.dateTime(answer.probed_at)}.` : '',
      ),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'table', 'data-testid': 'encoders-table' },
          h('caption', { class: 'visually-hidden' }, 'Encoders and whether they work here'),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', { scope: 'col' }, 'Encoder'),
              h('th', { scope: 'col' }, 'Kind'),
              h('th', { scope: 'col' }, 'Usable'),
              h('th', { scope: 'col' }, 'Why not'),
            ),
          ),
          h(
            'tbody',
            {},
            rows.map((e) =>
              h(
                'tr',
                { 'data-testid': `encoder-${e.name}`, 'data-usable': String(Boolean(e.usable)) },
                h(
                  'th',
                  { scope: 'row' },
                  e.label && e.label !== e.name ? `${e.label} (${e.name})` : e.name,
                ),
                h('td', {}, e.kind),
                h(
                  'td',
                  {},
                  h(
                    'span',
                    { class: 'badge', 'data-tone': e.usable ? 'ok' : 'bad' },
                    e.usable ? 'Yes' : 'No',
                  ),
                ),
                h('td', {}, e.usable ? '' : (e.reason ?? '')),
              ),
            ),
          ),
        ),
      ),
    ];
  }

  async function loadEncoders() {
    try {
      const answer = await api.get('/api/v1/encoders');
      if (alive) encodersBox.replaceChildren(...encodersTable(answer));
    } catch (error) {
      if (!alive || error?.status === 401) return;
      encodersBox.replaceChildren(
        h('p', { class: 'notice notice-warn' }, 'The encoders could not be read.'),
      );
    }
  }

  async function runProbe() {
    if (reprobe.getAttribute('aria-busy') === 'true') return;
    reprobe.setAttribute('aria-busy', 'true');
    setText(reprobe, 'Probing…');
    announce('Probing FFmpeg: each encoder makes a one-frame test encode');
    try {
      const answer = await api.post('/api/v1/encoders/probe');
      if (!alive) return;
      encodersBox.replaceChildren(...encodersTable(answer));
      const usable = (answer?.video ?? []).filter((e) => e.usable).length;
      announce(`Probe finished: ${usable} usable video encoder${usable === 1 ? '' : 's'}`);
      clearError();
    } catch (error) {
      if (alive && error?.status !== 401) showError(error, { context: 'The probe failed' });
    } finally {
      reprobe.removeAttribute('aria-busy');
      setText(reprobe, 'Re-probe FFmpeg');
    }
  }

  loadIngest();
  loadSettings();
  loadEncoders();
  return () => {
    alive = false;
    token = null;
  };
}
