/**
 * The profiles section of Set-up: which profile runs, switching to another, creating one
 * (empty or a copy) and removing one that is not active.
 */

import * as api from './api.js';
import { h } from './dom.js';
import { field, submitting, clearFormErrors } from './forms.js';
import { announce, confirmAction, showError, clearError } from './feedback.js';

/**
 * `profiles` as `GET /api/v1/profiles` answers: {active, profiles: [names]}.
 * `onActivated()` after another profile runs; `onChanged()` after one was added or removed.
 */
export function profilesSection(profiles, { onActivated, onChanged }) {
  const names = profiles?.profiles ?? [];
  const active = profiles?.active ?? null;

  const rows = names.map((name) =>
    h(
      'li',
      {
        class: 'profile-row',
        'data-testid': `profile-${name}`,
        'data-active': String(name === active),
      },
      h('span', { class: 'profile-name' }, name),
      name === active
        ? h(
            'span',
            { class: 'badge', 'data-tone': 'ok', 'data-testid': `profile-active-${name}` },
            'Active',
          )
        : [
            h(
              'button',
              {
                type: 'button',
                class: 'button button-small',
                'data-testid': `activate-profile-${name}`,
                onclick: (e) => activate(e.currentTarget, name),
              },
              'Use this profile',
            ),
            h(
              'button',
              {
                type: 'button',
                class: 'button button-small button-danger',
                'data-testid': `delete-profile-${name}`,
                onclick: (e) => remove(e.currentTarget, name),
              },
              'Remove',
            ),
          ],
    ),
  );

  const nameField = field({
    label: 'New profile name',
    path: 'name',
    testid: 'new-profile-name',
    required: true,
    attrs: { autocomplete: 'off' },
  });
  const fromField = field({
    label: 'Start from',
    path: 'from',
    testid: 'new-profile-from',
    value: '',
    options: [
      { value: '', label: 'An empty profile' },
      ...names.map((n) => ({ value: n, label: `A copy of ${n}` })),
    ],
  });
  const create = h(
    'button',
    { type: 'submit', class: 'button button-primary', 'data-testid': 'create-profile' },
    'Create profile',
  );
  const form = h(
    'form',
    { class: 'form', 'data-testid': 'profile-form', novalidate: true, 'aria-label': 'New profile' },
    h('div', { class: 'field-grid' }, nameField, fromField),
    h('div', { class: 'actions' }, create),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = nameField.control.value.trim();
    const body = { name, from: fromField.control.value || null };
    const made = await submitting(form, create, () => api.post('/api/v1/profiles', body), {
      context: 'The profile was not created',
    });
    if (made === undefined) return;
    announce(`Profile ${name} was created`);
    onChanged?.();
  });

  async function activate(button, name) {
    if (button.getAttribute('aria-busy') === 'true') return;
    button.setAttribute('aria-busy', 'true');
    try {
      await api.post(api.path('profiles', name, 'activate'));
      clearError();
      announce(`Profile ${name} is now in use`);
      onActivated?.();
    } catch (error) {
      if (error?.status !== 401) showError(error, { context: `Profile ${name} was not activated` });
    } finally {
      button.removeAttribute('aria-busy');
    }
  }

  async function remove(button, name) {
    const ok = await confirmAction({
      title: `Remove profile ${name}?`,
      text:
        `Profile ${name} and the stream keys stored for it are removed. ` +
        'The active profile is not touched.',
      confirm: 'Remove profile',
    });
    if (!ok) return;
    clearFormErrors(form);
    button.setAttribute('aria-busy', 'true');
    try {
      await api.del(api.path('profiles', name));
      announce(`Profile ${name} was removed`);
      onChanged?.();
    } catch (error) {
      if (error?.status !== 401) showError(error, { context: `Profile ${name} was not removed` });
    } finally {
      button.removeAttribute('aria-busy');
    }
  }

  return h(
    'section',
    { class: 'card', 'data-testid': 'profiles', 'aria-labelledby': 'profiles-title' },
    h('h2', { id: 'profiles-title' }, 'Profiles'),
    h(
      'p',
      { class: 'muted' },
      'A profile holds the ingest, the groups and their targets. One runs at a time; ' +
        'switching needs everything stopped.',
    ),
    h('ul', { class: 'profile-list', 'data-testid': 'profile-list' }, rows),
    form,
  );
}
