/**
 * A group's set-up form: name, mode and, for a re-encode group, its video and audio settings.
 *
 * The video encoder list comes from the agent's probe (`GET /api/v1/encoders`): encoders whose
 * test encode failed are listed but cannot be chosen, and say why. Editing sends only what
 * changed; a new group is added with `POST /api/v1/groups`.
 */

import * as api from './api.js';
import { h } from './dom.js';
import {
  field,
  numberOrNull,
  changes,
  submitting,
  clearFormErrors,
  showFieldError,
  formActions,
} from './forms.js';
import { announce, confirmAction } from './feedback.js';

export const PRESETS = [
  'ultrafast',
  'superfast',
  'veryfast',
  'faster',
  'fast',
  'medium',
  'slow',
  'slower',
  'veryslow',
];
const PROFILES = [
  { value: '', label: 'Encoder default' },
  { value: 'baseline', label: 'baseline' },
  { value: 'main', label: 'main' },
  { value: 'high', label: 'high' },
];
const SAMPLE_RATES = [
  { value: '', label: "The source's" },
  { value: '32000', label: '32 kHz' },
  { value: '44100', label: '44.1 kHz' },
  { value: '48000', label: '48 kHz' },
];
const CHANNELS = [
  { value: '', label: "The source's" },
  { value: '1', label: 'Mono' },
  { value: '2', label: 'Stereo' },
];
const AUDIO_FALLBACK = ['aac', 'libopus', 'libmp3lame'];

export const DEFAULT_VIDEO = {
  codec: 'libx264',
  width: 1280,
  height: 720,
  fps: null,
  bitrate_kbps: 3000,
  keyframe_interval_s: 2,
  preset: 'veryfast',
  profile: 'high',
};
export const DEFAULT_AUDIO = {
  codec: 'copy',
  bitrate_kbps: 160,
  sample_rate: null,
  channels: null,
};

function encoderOption(encoder) {
  const name =
    encoder.label && encoder.label !== encoder.name
      ? `${encoder.label} (${encoder.name})`
      : encoder.name;
  if (encoder.usable) return { value: encoder.name, label: name };
  const reason = encoder.reason || 'its test encode failed';
  return {
    value: encoder.name,
    label: `${name}: not usable here (${reason})`,
    disabled: true,
    title: reason,
  };
}

/** The video encoder choices, the current one kept even when the probe does not list it. */
function videoOptions(encoders, current) {
  const list = (encoders?.video ?? []).map(encoderOption);
  if (current && !list.some((o) => o.value === current)) {
    list.unshift({ value: current, label: `${current} (not found by the probe)` });
  }
  return list.length ? list : [{ value: 'libx264', label: 'libx264' }];
}

function audioOptions(encoders, current) {
  const copy = { value: 'copy', label: "Keep the source's audio (copy)" };
  const known = encoders?.audio?.length
    ? encoders.audio.filter((e) => e.name !== 'copy').map(encoderOption)
    : AUDIO_FALLBACK.map((name) => ({ value: name, label: name }));
  const list = [copy, ...known];
  if (current && !list.some((o) => o.value === current))
    list.push({ value: current, label: current });
  return list;
}

/**
 * The form for `group` (as `GET /api/v1/profile` lists it), or for a new group when `group`
 * is null. `onSaved(view, {added})`, `onRemoved(id)`, `onCancel()`.
 */
export function groupForm(group, { encoders, onSaved, onRemoved, onCancel }) {
  const isNew = !group;
  const key = isNew ? 'new' : group.id;
  const prefix = `groups[${key}]`;
  let baseline = group ?? {
    id: '',
    name: '',
    mode: 'passthrough',
    video: { ...DEFAULT_VIDEO },
    audio: { ...DEFAULT_AUDIO },
  };
  const v = { ...DEFAULT_VIDEO, ...baseline.video };
  const a = { ...DEFAULT_AUDIO, ...baseline.audio };

  const id = isNew
    ? field({
        label: 'Id',
        path: `${prefix}.id`,
        required: true,
        hint: "Short and typeable: lower-case letters, digits, '-' or '_' (e.g. 720p).",
        attrs: { autocomplete: 'off', pattern: '[a-z0-9][a-z0-9_-]{0,31}' },
      })
    : null;
  const name = field({ label: 'Name', path: `${prefix}.name`, value: baseline.name });
  const mode = field({
    label: 'Mode',
    path: `${prefix}.mode`,
    value: baseline.mode,
    options: [
      { value: 'passthrough', label: 'Passthrough' },
      { value: 'reencode', label: 'Re-encode' },
    ],
    hint: 'Passthrough sends the source as it is; re-encode makes one encode for all its targets.',
  });

  const unusable = (encoders?.video ?? []).filter((e) => !e.usable).length;
  const codec = field({
    label: 'Video encoder',
    path: `${prefix}.video.codec`,
    value: v.codec,
    options: videoOptions(encoders, v.codec),
    span: true,
    hint: encoders
      ? 'Encoders whose test encode failed on this computer cannot be chosen' +
        (unusable ? ` (${unusable} listed with the reason).` : '.')
      : 'The list of usable encoders could not be read; the agent checks the choice when saving.',
  });
  const width = numberField(
    'Width (px)',
    `${prefix}.video.width`,
    v.width,
    { min: 2, step: 2 },
    "Empty: the source's.",
  );
  const height = numberField('Height (px)', `${prefix}.video.height`, v.height, {
    min: 2,
    step: 2,
  });
  const fps = numberField(
    'Frame rate (fps)',
    `${prefix}.video.fps`,
    v.fps,
    { min: 1, max: 240, step: 'any' },
    "Empty: the source's.",
  );
  const vBitrate = numberField(
    'Video bitrate (kbit/s)',
    `${prefix}.video.bitrate_kbps`,
    v.bitrate_kbps,
    { min: 100, max: 100000, step: 1 },
  );
  const keyframe = numberField(
    'Keyframe interval (s)',
    `${prefix}.video.keyframe_interval_s`,
    v.keyframe_interval_s,
    { min: 0.5, max: 10, step: 'any' },
  );
  const preset = field({
    label: 'Preset',
    path: `${prefix}.video.preset`,
    value: v.preset,
    options: PRESETS,
    hint: 'Faster presets use less CPU.',
  });
  const profile = field({
    label: 'Profile',
    path: `${prefix}.video.profile`,
    value: v.profile ?? '',
    options: PROFILES,
  });
  const aCodec = field({
    label: 'Audio',
    path: `${prefix}.audio.codec`,
    value: a.codec,
    options: audioOptions(encoders, a.codec),
  });
  const aBitrate = numberField(
    'Audio bitrate (kbit/s)',
    `${prefix}.audio.bitrate_kbps`,
    a.bitrate_kbps,
    { min: 32, max: 512, step: 1 },
  );
  const sampleRate = field({
    label: 'Sample rate',
    path: `${prefix}.audio.sample_rate`,
    value: a.sample_rate ?? '',
    options: SAMPLE_RATES,
  });
  const channels = field({
    label: 'Channels',
    path: `${prefix}.audio.channels`,
    value: a.channels ?? '',
    options: CHANNELS,
  });

  const encoding = h(
    'div',
    { class: 'encoding' },
    h(
      'fieldset',
      { class: 'fieldset' },
      h('legend', {}, 'Video'),
      h(
        'div',
        { class: 'field-grid' },
        codec,
        width,
        height,
        fps,
        vBitrate,
        keyframe,
        preset,
        profile,
      ),
    ),
    h(
      'fieldset',
      { class: 'fieldset' },
      h('legend', {}, 'Audio'),
      h('div', { class: 'field-grid' }, aCodec, aBitrate, sampleRate, channels),
    ),
  );

  const { save, actions } = formActions({ kind: 'group', key, isNew, onCancel, remove });

  const form = h(
    'form',
    {
      class: 'form group-form',
      'data-testid': `group-form-${key}`,
      novalidate: true,
      'aria-label': isNew ? 'New group' : `Group ${group.id}`,
    },
    h('div', { class: 'field-grid' }, id, name, mode),
    encoding,
    actions,
  );

  function showEncoding() {
    encoding.hidden = mode.control.value !== 'reencode';
    aBitrate.hidden = aCodec.control.value === 'copy';
    sampleRate.hidden = aCodec.control.value === 'copy';
    channels.hidden = aCodec.control.value === 'copy';
  }
  mode.control.addEventListener('change', showEncoding);
  aCodec.control.addEventListener('change', showEncoding);
  showEncoding();

  function read() {
    const optional = (select) => (select.value === '' ? null : Number(select.value));
    return {
      name: name.control.value.trim(),
      mode: mode.control.value,
      video: {
        codec: codec.control.value,
        width: numberOrNull(width.control),
        height: numberOrNull(height.control),
        fps: numberOrNull(fps.control),
        bitrate_kbps: numberOrNull(vBitrate.control),
        keyframe_interval_s: numberOrNull(keyframe.control),
        preset: preset.control.value,
        profile: profile.control.value || null,
      },
      audio: {
        codec: aCodec.control.value,
        bitrate_kbps: numberOrNull(aBitrate.control),
        sample_rate: optional(sampleRate.control),
        channels: optional(channels.control),
      },
    };
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    let wanted;
    try {
      wanted = read();
    } catch (problem) {
      clearFormErrors(form);
      showFieldError(form, problem);
      return;
    }
    if (isNew) {
      const spec = { id: id.control.value.trim(), name: wanted.name, mode: wanted.mode };
      if (wanted.mode === 'reencode')
        Object.assign(spec, { video: wanted.video, audio: wanted.audio });
      const view = await submitting(form, save, () => api.post('/api/v1/groups', spec), {
        context: 'The group was not added',
      });
      if (!view) return;
      announce(`Group ${view.id} was added`);
      onSaved?.(view, { added: true });
      return;
    }
    const body = changes(
      { name: baseline.name, mode: baseline.mode, video: baseline.video, audio: baseline.audio },
      wanted,
    );
    if (!Object.keys(body).length) {
      clearFormErrors(form);
      announce(`Nothing to save: group ${group.id} is as it was`);
      return;
    }
    const view = await submitting(form, save, () => api.patch(api.path('groups', group.id), body), {
      context: `Group ${group.id} was not changed`,
    });
    if (!view) return;
    baseline = view;
    announce(`Group ${group.id} was saved`);
    onSaved?.(view, { added: false });
  });

  async function remove(event) {
    const button = event.currentTarget;
    const ok = await confirmAction({
      title: `Remove group ${group.id}?`,
      text:
        `Group ${group.id} and its ${group.targets?.length ?? 0} target(s) are removed from ` +
        'this profile, with their stored stream keys.',
      confirm: 'Remove group',
    });
    if (!ok) return;
    const done = await submitting(
      form,
      button,
      async () => {
        await api.del(api.path('groups', group.id));
        return true;
      },
      { context: `Group ${group.id} was not removed` },
    );
    if (!done) return;
    announce(`Group ${group.id} was removed`);
    onRemoved?.(group.id);
  }

  return form;
}

function numberField(label, path, value, attrs, hint = '') {
  return field({
    label,
    path,
    type: 'number',
    value: value ?? '',
    hint,
    attrs: { inputmode: 'decimal', ...attrs },
  });
}
