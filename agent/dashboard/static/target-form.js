/**
 * A target's set-up form: name, platform, URL, stream key, enabled, backup ingest.
 *
 * Choosing a platform fills the URL with its preset ingest (`GET /api/v1/platforms`) when the
 * URL was empty or still another preset's. The stream key is write-only: never shown, its
 * placeholder says whether one is stored, and a typed key is sent on its own with
 * `PUT /api/v1/targets/{id}/key` after the other settings were saved.
 */

import * as api from './api.js';
import { h } from './dom.js';
import {
  field,
  secretField,
  changes,
  submitting,
  clearFormErrors,
  formActions,
} from './forms.js';
import { announce, confirmAction, showError } from './feedback.js';

/** Platform ids without their presets' addresses, when the agent cannot list them. */
export const FALLBACK_PLATFORMS = [
  { id: 'youtube', label: 'YouTube', default_url: null, needs_key: true },
  { id: 'twitch', label: 'Twitch', default_url: null, needs_key: true },
  { id: 'kick', label: 'Kick', default_url: null, needs_key: true },
  { id: 'facebook', label: 'Facebook Live', default_url: null, needs_key: true },
  { id: 'custom', label: 'Custom server', default_url: null, needs_key: false },
  { id: 'recording', label: 'Recording', default_url: null, needs_key: false },
];

function hasBackup(platform) {
  if (!platform) return false;
  if ('backup_url' in platform || 'has_backup' in platform) {
    return Boolean(platform.backup_url || platform.has_backup);
  }
  return platform.id === 'youtube';
}

/**
 * The form for `target` (as `GET /api/v1/profile` lists it) or, with `target` null, for a new
 * target of group `groupId`. `onSaved(view, {added})`, `onRemoved(id)`, `onCancel()`.
 */
export function targetForm(target, { groupId, platforms, onSaved, onRemoved, onCancel }) {
  const isNew = !target;
  const key = isNew ? 'new' : target.id;
  const prefix = `targets[${key}]`;
  const list = platforms?.length ? platforms : FALLBACK_PLATFORMS;
  const byId = new Map(list.map((p) => [p.id, p]));
  let baseline = target ?? {
    id: '',
    name: '',
    platform: list[0].id,
    url: list[0].default_url ?? '',
    enabled: true,
    backup: false,
    has_key: false,
  };

  const id = isNew
    ? field({
        label: 'Id',
        path: `${prefix}.id`,
        required: true,
        hint: "Short and typeable: lower-case letters, digits, '-' or '_' (e.g. youtube).",
        attrs: { autocomplete: 'off', pattern: '[a-z0-9][a-z0-9_-]{0,31}' },
      })
    : null;
  const name = field({ label: 'Name', path: `${prefix}.name`, value: baseline.name });
  const options = list.map((p) => ({ value: p.id, label: p.label ?? p.title ?? p.id }));
  if (!byId.has(baseline.platform))
    options.push({ value: baseline.platform, label: baseline.platform });
  const platform = field({
    label: 'Platform',
    path: `${prefix}.platform`,
    value: baseline.platform,
    options,
  });
  const url = field({
    label: 'URL',
    path: `${prefix}.url`,
    value: baseline.url,
    wide: true,
    hint: ' ',
  });
  const urlHint = url.querySelector('.field-hint');
  const keyHint = () => secret.querySelector('.field-hint');
  const secret = secretField({
    label: 'Stream key',
    path: `${prefix}.key`,
    isSet: baseline.has_key,
    hint: 'Write-only: kept in the system keyring and never shown again.',
    span: true,
  });
  const enabled = field({
    label: 'Enabled (sends when its group is live)',
    path: `${prefix}.enabled`,
    type: 'checkbox',
    value: baseline.enabled,
  });
  const backup = field({
    label: "Use the platform's backup ingest",
    path: `${prefix}.backup`,
    type: 'checkbox',
    value: baseline.backup,
  });

  const { save, actions } = formActions({ kind: 'target', key, isNew, onCancel, remove });

  const form = h(
    'form',
    {
      class: 'form target-form',
      'data-testid': `target-form-${key}`,
      novalidate: true,
      'aria-label': isNew ? `New target in group ${groupId}` : `Target ${target.id}`,
    },
    h('div', { class: 'field-grid' }, id, name, platform, url, secret, enabled, backup),
    actions,
  );

  let shownPlatform = baseline.platform;
  function showPlatform() {
    const p = byId.get(platform.control.value);
    const isRecording = platform.control.value === 'recording';
    secret.hidden = isRecording;
    backup.hidden = !hasBackup(p) && !backup.control.checked;
    url.control.placeholder =
      p?.default_url ?? (isRecording ? 'A file or folder, e.g. ~/Videos/{date}.mkv' : '');
    const hint =
      p?.url_hint ??
      (isRecording
        ? 'A file or a folder; {date} and {time} are filled in when recording starts.'
        : p?.default_url
          ? "Empty: the platform's usual ingest."
          : 'The server address (rtmp, rtmps or srt).');
    urlHint.textContent = hint;
    const where = p?.key_help ? `${p.key_help} ` : '';
    keyHint().textContent = `${where}Write-only: kept in the system keyring and never shown again.`;
  }
  platform.control.addEventListener('change', () => {
    const before = byId.get(shownPlatform);
    const next = byId.get(platform.control.value);
    const current = url.control.value.trim();
    // Fill in the preset only over an empty URL or another preset's: never over a typed one.
    if (!current || (before?.default_url && current === before.default_url)) {
      url.control.value = next?.default_url ?? '';
    }
    shownPlatform = platform.control.value;
    showPlatform();
  });
  showPlatform();

  function read() {
    const out = {
      name: name.control.value.trim(),
      platform: platform.control.value,
      url: url.control.value.trim(),
      enabled: enabled.control.checked,
    };
    if (!backup.hidden) out.backup = backup.control.checked;
    return out;
  }

  async function storeKey(targetId) {
    const typed = secret.control.value;
    if (!typed) return true;
    await api.put(api.path('targets', targetId, 'key'), { key: typed });
    return true;
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const wanted = read();
    if (isNew) {
      const spec = { id: id.control.value.trim(), ...wanted };
      const view = await submitting(
        form,
        save,
        () => api.post(api.path('groups', groupId, 'targets'), spec),
        {
          context: 'The target was not added',
        },
      );
      if (!view) return;
      try {
        await storeKey(view.id);
      } catch (error) {
        if (error?.status !== 401) {
          showError(error, {
            context: `Target ${view.id} was added, but its stream key was not stored`,
          });
        }
        onSaved?.(view, { added: true });
        return;
      }
      announce(`Target ${view.id} was added to group ${groupId}`);
      onSaved?.(view, { added: true });
      return;
    }
    const body = changes(
      {
        name: baseline.name,
        platform: baseline.platform,
        url: baseline.url,
        enabled: baseline.enabled,
        backup: baseline.backup,
      },
      wanted,
    );
    const typedKey = Boolean(secret.control.value);
    if (!Object.keys(body).length && !typedKey) {
      clearFormErrors(form);
      announce(`Nothing to save: target ${target.id} is as it was`);
      return;
    }
    const view = await submitting(
      form,
      save,
      async () => {
        let answer = baseline;
        if (Object.keys(body).length)
          answer = await api.patch(api.path('targets', target.id), body);
        baseline = { ...baseline, ...answer };
        if (typedKey) {
          await storeKey(target.id);
          baseline = { ...baseline, has_key: true };
        }
        return baseline;
      },
      { context: `Target ${target.id} was not fully saved` },
    );
    if (!view) return;
    secret.control.value = '';
    secret.control.placeholder = view.has_key ? 'set — type to replace' : 'not set';
    secret.control.dataset.secret = view.has_key ? 'set' : 'unset';
    announce(
      typedKey
        ? `Target ${target.id} was saved with its new stream key`
        : `Target ${target.id} was saved`,
    );
    onSaved?.(view, { added: false });
  });

  async function remove(event) {
    const button = event.currentTarget;
    const ok = await confirmAction({
      title: `Remove target ${target.id}?`,
      text: `Target ${target.id} is removed from this profile, with its stored stream key.`,
      confirm: 'Remove target',
    });
    if (!ok) return;
    const done = await submitting(
      form,
      button,
      async () => {
        await api.del(api.path('targets', target.id));
        return true;
      },
      { context: `Target ${target.id} was not removed` },
    );
    if (!done) return;
    announce(`Target ${target.id} was removed`);
    onRemoved?.(target.id);
  }

  return form;
}
