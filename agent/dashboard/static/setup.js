/**
 * The Set-up view: profiles, the ingest, and each group with its targets.
 *
 * It reads the set-up when it opens (`/profile`, `/profiles`, `/encoders`, `/platforms`).
 * A saved edit keeps the form where it is; adding or removing something, or running another
 * profile, reads the set-up again and draws the view anew, focus kept where it was.
 */

import * as api from './api.js';
import { h, setText, focusKey, restoreFocus } from './dom.js';
import { showError } from './feedback.js';
import { ingestForm } from './ingest-form.js';
import { groupForm } from './group-form.js';
import { targetForm } from './target-form.js';
import { profilesSection } from './profiles.js';
import * as fmt from './format.js';

export function mountSetup(root, { refreshAgent }) {
  let alive = true;
  let data = null;
  let adding = null; // null, 'group', or a group id (adding a target to it)

  async function load() {
    const [profile, profiles, encoders, platforms] = await Promise.allSettled([
      api.get('/api/v1/profile'),
      api.get('/api/v1/profiles'),
      api.get('/api/v1/encoders'),
      api.get('/api/v1/platforms'),
    ]);
    if (!alive) return;
    if (profile.status === 'rejected') {
      if (profile.reason?.status !== 401) {
        showError(profile.reason, { context: 'The set-up could not be read' });
        root.replaceChildren(
          h(
            'p',
            { class: 'notice notice-bad', 'data-testid': 'setup-failed' },
            'The set-up could not be read.',
          ),
          h(
            'button',
            { type: 'button', class: 'button', 'data-testid': 'setup-retry', onclick: reload },
            'Try again',
          ),
        );
      }
      return;
    }
    data = {
      profile: profile.value,
      profiles: profiles.status === 'fulfilled' ? profiles.value : null,
      encoders: encoders.status === 'fulfilled' ? encoders.value : null,
      platforms: platforms.status === 'fulfilled' ? (platforms.value?.platforms ?? null) : null,
    };
    render();
  }

  async function reload() {
    await load();
    refreshAgent();
  }

  function render() {
    const key = focusKey(root);
    const { profile, profiles, encoders, platforms } = data;
    const groups = profile.groups ?? [];
    const sections = [];
    sections.push(
      profilesSection(profiles ?? { active: profile.name, profiles: [profile.name] }, {
        onActivated: reload,
        onChanged: reload,
      }),
    );
    sections.push(
      h(
        'section',
        { class: 'card', 'data-testid': 'setup-ingest', 'aria-labelledby': 'setup-ingest-title' },
        h('h2', { id: 'setup-ingest-title' }, 'Ingest'),
        h('p', { class: 'muted' }, 'Where OBS sends its one stream.'),
        ingestForm(profile.ingest, { onSaved: () => refreshAgent() }),
      ),
    );
    if (!encoders) {
      sections.push(
        h(
          'p',
          { class: 'notice notice-warn', 'data-testid': 'encoders-unknown' },
          'The list of usable encoders could not be read; re-probe FFmpeg under Settings.',
        ),
      );
    }
    const groupCards = groups.map((group) => groupCard(group, encoders, platforms));
    sections.push(
      h(
        'section',
        {
          class: 'setup-groups',
          'data-testid': 'setup-groups',
          'aria-labelledby': 'setup-groups-title',
        },
        h('h2', { id: 'setup-groups-title' }, 'Groups and targets'),
        h(
          'p',
          { class: 'muted' },
          'A group sends the same stream to its targets: the source as it is, or one encode of it.',
        ),
        groupCards.length ? groupCards : h('p', { class: 'empty' }, 'No groups yet.'),
        adding === 'group'
          ? h(
              'section',
              { class: 'card card-new', 'aria-labelledby': 'new-group-title' },
              h('h3', { id: 'new-group-title' }, 'New group'),
              groupForm(null, {
                encoders,
                onSaved: () => {
                  adding = null;
                  reload();
                },
                onCancel: () => {
                  adding = null;
                  render();
                  root.querySelector('[data-testid="add-group"]')?.focus();
                },
              }),
            )
          : h(
              'button',
              {
                type: 'button',
                class: 'button button-primary',
                'data-testid': 'add-group',
                onclick: () => {
                  adding = 'group';
                  render();
                  root.querySelector('[data-testid="field-groups[new].id"]')?.focus();
                },
              },
              'Add a group',
            ),
      ),
    );
    root.replaceChildren(...sections);
    restoreFocus(root, key);
  }

  function groupCard(group, encoders, platforms) {
    const titleId = `setup-group-title-${group.id}`;
    const targets = (group.targets ?? []).map((target) => {
      const keyState = h('span', {
        class: 'badge',
        'data-testid': `key-state-${target.id}`,
      });
      // Said again after each save: a key typed into the form changes it without a reload.
      const showKeyState = () => {
        keyState.dataset.tone = target.has_key ? 'ok' : 'idle';
        setText(
          keyState,
          target.platform === 'recording' ? 'Recording' : target.has_key ? 'Key set' : 'No key',
        );
      };
      showKeyState();
      return h(
        'li',
        { class: 'setup-target', 'data-testid': `setup-target-${target.id}` },
        h(
          'h4',
          {},
          target.name && target.name !== target.id ? `${target.name} (${target.id})` : target.id,
          ' ',
          keyState,
        ),
        targetForm(target, {
          groupId: group.id,
          platforms,
          onSaved: (view) => {
            Object.assign(target, view);
            showKeyState();
            refreshAgent();
          },
          onRemoved: reload,
        }),
      );
    });
    const newTarget =
      adding === group.id
        ? h(
            'div',
            { class: 'card-new', 'aria-labelledby': `new-target-title-${group.id}` },
            h('h4', { id: `new-target-title-${group.id}` }, `New target in ${group.id}`),
            targetForm(null, {
              groupId: group.id,
              platforms,
              onSaved: () => {
                adding = null;
                reload();
              },
              onCancel: () => {
                adding = null;
                render();
                root.querySelector(`[data-testid="add-target-${CSS.escape(group.id)}"]`)?.focus();
              },
            }),
          )
        : h(
            'button',
            {
              type: 'button',
              class: 'button',
              'data-testid': `add-target-${group.id}`,
              onclick: () => {
                adding = group.id;
                render();
                root.querySelector('[data-testid="field-targets[new].id"]')?.focus();
              },
            },
            `Add a target to ${group.id}`,
          );
    return h(
      'section',
      {
        class: 'card setup-group',
        'data-testid': `setup-group-${group.id}`,
        'aria-labelledby': titleId,
      },
      h(
        'header',
        { class: 'card-head' },
        h(
          'h3',
          { id: titleId },
          group.name && group.name !== group.id ? `${group.name} (${group.id})` : group.id,
        ),
        h(
          'span',
          { class: 'badge', 'data-tone': 'idle' },
          fmt.MODE_LABELS[group.mode] ?? group.mode,
        ),
      ),
      groupForm(group, {
        encoders,
        onSaved: (view) => {
          Object.assign(group, view);
          refreshAgent();
        },
        onRemoved: reload,
      }),
      h('h4', { class: 'subhead' }, 'Targets'),
      targets.length
        ? h('ul', { class: 'setup-targets', 'aria-label': `Targets of ${group.id}` }, targets)
        : h('p', { class: 'empty' }, 'No targets yet.'),
      newTarget,
    );
  }

  root.replaceChildren(
    h('p', { class: 'muted', 'data-testid': 'setup-loading' }, 'Reading the set-up…'),
  );
  load();
  return () => {
    alive = false;
  };
}
