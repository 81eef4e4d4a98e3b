/**
 * Form fields with labels, hints and errors, and putting a 422's message next to its field.
 *
 * Every input carries `data-field`, the path the agent uses in its errors
 * (`groups[main].video.width`, `targets[yt].url`, `ingest.port`, `ffmpeg`), and
 * `data-testid="field-<that path>"`. {@link showFieldError} finds the input for an error's
 * `field` inside the form that was sent: the same path first, else the same last part (the
 * agent names a group being added by its new id, or a stored item by its position), and
 * shows the message under it with `aria-invalid` and `aria-describedby`. An error that names
 * no input of the form goes to the banner.
 */

import { h, uid, attr } from './dom.js';
import { showError, clearError } from './feedback.js';

/** A labelled input, select or textarea. Returns the wrapper; `.control` is the input. */
export function field({
  label,
  path,
  type = 'text',
  value = '',
  hint = '',
  options = null,
  placeholder = null,
  required = false,
  testid = null,
  attrs = {},
  wide = false,
  span = false,
}) {
  const id = uid('f');
  const hintId = hint ? `${id}-hint` : null;
  const common = {
    id,
    name: path,
    'data-field': path,
    'data-testid': testid ?? `field-${path}`,
    'aria-describedby': hintId,
    required,
    ...attrs,
  };
  let control;
  if (options) {
    control = h(
      'select',
      common,
      options.map((o) => option(o, value)),
    );
  } else if (type === 'checkbox') {
    control = h('input', { ...common, type, checked: Boolean(value) });
  } else {
    control = h('input', {
      autocomplete: type === 'password' ? 'new-password' : 'off',
      ...common,
      type,
      value: value ?? '',
      placeholder,
      spellcheck: type === 'text' ? 'false' : null,
    });
  }
  const hintEl = hint ? h('p', { class: 'field-hint', id: hintId }, hint) : null;
  const wrapper =
    type === 'checkbox'
      ? h('div', { class: 'field field-check' }, control, h('label', { for: id }, label), hintEl)
      : h(
          'div',
          { class: `field${wide ? ' field-wide' : ''}${span ? ' field-span' : ''}` },
          h('label', { for: id }, label),
          control,
          hintEl,
        );
  wrapper.control = control;
  control.addEventListener('input', () => clearFieldError(control));
  control.addEventListener('change', () => clearFieldError(control));
  return wrapper;
}

/** `{value, label, disabled, title}` or a plain string. */
export function option(o, selected) {
  const item = typeof o === 'string' ? { value: o, label: o } : o;
  return h(
    'option',
    {
      value: item.value,
      disabled: item.disabled,
      title: item.title,
      selected: String(item.value) === String(selected ?? ''),
    },
    item.label,
  );
}

/** A write-only secret: never filled in; the placeholder says whether one is stored. */
export function secretField({ label, path, isSet, hint = '', testid = null, span = false }) {
  return field({
    label,
    path,
    type: 'password',
    value: '',
    hint,
    testid,
    span,
    placeholder: isSet ? 'set — type to replace' : 'not set',
    attrs: { autocomplete: 'new-password', 'data-secret': isSet ? 'set' : 'unset' },
  });
}

// -- reading values --------------------------------------------------------------------------

/** A local refusal, shown like the agent's own 422s. */
export class FieldProblem extends Error {
  constructor(field, message, hint = null) {
    super(message);
    this.status = 422;
    this.code = 'invalid';
    this.field = field;
    this.what = message;
    this.hint = hint;
  }
}

/** A number input's value: null when empty; refuses what the browser could not read. */
export function numberOrNull(input) {
  if (input.validity.badInput) {
    throw new FieldProblem(input.dataset.field, 'this is not a number');
  }
  const text = input.value.trim();
  return text === '' ? null : Number(text);
}

/** The settings that differ from `before` (shallow; objects compared by their JSON). */
export function changes(before, after) {
  const out = {};
  for (const [key, value] of Object.entries(after)) {
    const old = before?.[key];
    if (value !== null && typeof value === 'object') {
      const inner = changes(old ?? {}, value);
      if (Object.keys(inner).length) out[key] = inner;
    } else if (old !== value && !(old === undefined && value === null)) {
      out[key] = value;
    }
  }
  return out;
}

// -- errors ----------------------------------------------------------------------------------

function tail(path) {
  return String(path ?? '').replace(/^(?:[a-z_]+\[[^\]]*\]\.)+/i, '');
}

/** The input of `form` that an error's `field` names, if any. */
export function inputFor(form, fieldPath) {
  if (!fieldPath) return null;
  const inputs = [...form.querySelectorAll('[data-field]')];
  const exact = inputs.find((el) => el.dataset.field === fieldPath);
  if (exact) return exact;
  const wanted = tail(fieldPath);
  return inputs.find((el) => tail(el.dataset.field) === wanted) ?? null;
}

export function clearFieldError(input) {
  const errorId = input.dataset.errorId;
  if (!errorId) return;
  document.getElementById(errorId)?.remove();
  delete input.dataset.errorId;
  input.removeAttribute('aria-invalid');
  const describedBy = (input.getAttribute('aria-describedby') ?? '')
    .split(/\s+/)
    .filter((id) => id && id !== errorId)
    .join(' ');
  attr(input, 'aria-describedby', describedBy || null);
  input.closest('.field')?.classList.remove('has-error');
}

export function clearFormErrors(form) {
  for (const input of form.querySelectorAll('[data-error-id]')) clearFieldError(input);
  clearError();
}

/**
 * Show `error` where it belongs: next to its field in `form` (focused), else in the banner.
 * Returns true when it went next to a field.
 */
export function showFieldError(form, error, { context = '' } = {}) {
  const input = error?.status === 422 ? inputFor(form, error.field) : null;
  if (!input) {
    showError(error, { context });
    return false;
  }
  clearFieldError(input);
  const errorId = `${input.id}-error`;
  const text = error.hint ? `${sentence(error.what)} ${error.hint}` : sentence(error.what);
  const message = h(
    'p',
    {
      class: 'field-error',
      id: errorId,
      'data-testid': 'field-error',
      'data-for': input.dataset.field,
    },
    text,
  );
  const wrapper = input.closest('.field');
  (wrapper ?? input.parentElement).append(message);
  wrapper?.classList.add('has-error');
  input.dataset.errorId = errorId;
  input.setAttribute('aria-invalid', 'true');
  const describedBy = [input.getAttribute('aria-describedby'), errorId].filter(Boolean).join(' ');
  input.setAttribute('aria-describedby', describedBy);
  // A field hidden by the form's current choices cannot take focus: say it in the banner too.
  if (input.offsetParent === null) showError(error, { context });
  else input.focus();
  return true;
}

function sentence(text) {
  const t = String(text ?? '').trim();
  if (!t) return '';
  const first = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

/**
 * Run a form's save: errors cleared first, the button marked busy (and not pressed twice),
 * the outcome shown. Returns the save's result, or undefined when it failed.
 */
export async function submitting(form, button, work, { context = '' } = {}) {
  if (button?.getAttribute('aria-busy') === 'true') return undefined;
  clearFormErrors(form);
  button?.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } catch (error) {
    if (error?.status === 401) return undefined; // the page is showing the sign-in form
    showFieldError(form, error, { context });
    return undefined;
  } finally {
    button?.removeAttribute('aria-busy');
  }
}

/**
 * A form's buttons for a `kind` ('group', 'target'): Add or Save, and Cancel (new) or Remove
 * (stored). Returns `{ save, actions }`; `save` is what {@link submitting} disables.
 */
export function formActions({ kind, key, isNew, onCancel, remove }) {
  const save = h(
    'button',
    { type: 'submit', class: 'button button-primary', 'data-testid': `save-${kind}-${key}` },
    isNew ? `Add ${kind}` : `Save ${kind}`,
  );
  const other = isNew
    ? h(
        'button',
        {
          type: 'button',
          class: 'button',
          'data-testid': `cancel-${kind}-new`,
          onclick: () => onCancel?.(),
        },
        'Cancel',
      )
    : h(
        'button',
        {
          type: 'button',
          class: 'button button-danger',
          'data-testid': `delete-${kind}-${key}`,
          onclick: remove,
        },
        `Remove ${kind}`,
      );
  return { save, actions: h('div', { class: 'actions' }, save, other) };
}
