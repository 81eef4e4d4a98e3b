/**
 * The Logs view: the agent's and FFmpeg's recent lines, then new ones as `log` events arrive.
 *
 * The agent redacts every line before it leaves (keys, tokens); this page only shows them.
 * A source filter asks the agent again (`GET /api/v1/logs?source=`); the level filter and
 * pausing work on what is already here. While paused, new lines wait and are counted.
 */

import * as api from './api.js';
import { h, setText } from './dom.js';
import * as fmt from './format.js';
import { field } from './forms.js';
import { showError } from './feedback.js';

const LIMIT = 500;
const MAX_LINES = 2000;
const LEVELS = { debug: 0, info: 1, warning: 2, error: 3 };

/** Does a line's source pass the filter (exact, or a prefix such as `target:`)? */
function sourceMatches(filter, source) {
  if (!filter) return true;
  return source === filter || (filter.endsWith(':') && String(source).startsWith(filter));
}

function sourceLabel(source) {
  if (source === 'agent') return 'Agent';
  if (source === 'ingest') return 'Ingest';
  if (source === 'group:') return 'All groups';
  if (source === 'target:') return 'All targets';
  const [kind, id] = String(source).split(':');
  if (id && kind === 'group') return `Group ${id}`;
  if (id && kind === 'target') return `Target ${id}`;
  return source;
}

export function mountLogs(root, { store }) {
  let alive = true;
  let paused = false;
  let held = [];
  let knownSources = new Set(['agent', 'ingest']);
  let requested = 0;

  const source = field({
    label: 'Source',
    path: 'source',
    testid: 'log-source',
    options: [{ value: '', label: 'Everything' }],
  });
  const level = field({
    label: 'At least',
    path: 'level',
    testid: 'log-level',
    value: 'debug',
    options: [
      { value: 'debug', label: 'Every line' },
      { value: 'info', label: 'Information' },
      { value: 'warning', label: 'Warnings and errors' },
      { value: 'error', label: 'Errors only' },
    ],
  });
  const pause = h(
    'button',
    {
      type: 'button',
      class: 'button',
      'data-testid': 'log-pause',
      'aria-pressed': 'false',
      onclick: togglePause,
    },
    'Pause',
  );
  const held_ = h('span', { class: 'muted', 'data-testid': 'log-held' });
  const list = h('ol', { class: 'log-list', 'data-testid': 'log-list' });
  const empty = h('p', { class: 'empty', 'data-testid': 'log-empty' }, 'No lines yet.');
  const scroller = h(
    'div',
    { class: 'log-scroll', tabindex: '0', role: 'region', 'aria-label': 'Log lines, oldest first' },
    list,
    empty,
  );

  root.replaceChildren(
    h(
      'div',
      { class: 'toolbar log-toolbar' },
      h('div', { class: 'field-row' }, source, level),
      h('div', { class: 'toolbar-actions' }, pause, held_),
    ),
    h(
      'p',
      { class: 'muted' },
      'Stream keys and the API token are removed from every line before it is shown.',
    ),
    scroller,
  );

  function rebuildSources(extra = []) {
    for (const s of extra) knownSources.add(s);
    for (const g of store.status?.groups ?? []) {
      knownSources.add(`group:${g.id}`);
      for (const t of g.targets ?? []) knownSources.add(`target:${t.id}`);
    }
    const sorted = [...knownSources]
      .filter((s) => !s.endsWith(':'))
      .sort((a, b) => {
        const rank = (s) =>
          s === 'agent' ? 0 : s === 'ingest' ? 1 : s.startsWith('group:') ? 2 : 3;
        return rank(a) - rank(b) || a.localeCompare(b);
      });
    const options = ['', 'group:', 'target:', ...sorted];
    const current = source.control.value;
    source.control.replaceChildren(
      ...options.map((value) =>
        h(
          'option',
          { value, selected: value === current },
          value ? sourceLabel(value) : 'Everything',
        ),
      ),
    );
  }

  function lineEl(line) {
    const lvl = LEVELS[line.level] !== undefined ? line.level : 'info';
    return h(
      'li',
      {
        class: 'log-line',
        'data-testid': 'log-line',
        'data-level': lvl,
        'data-source': line.source ?? '',
        hidden: LEVELS[lvl] < LEVELS[level.control.value],
      },
      h(
        'time',
        { class: 'log-time', datetime: typeof line.time === 'string' ? line.time : null },
        fmt.clock(line.time ?? line.at),
      ),
      ' ',
      h('span', { class: 'log-level' }, lvl),
      ' ',
      h('span', { class: 'log-source' }, line.source ?? ''),
      ' ',
      h('span', { class: 'log-text' }, line.line ?? ''),
    );
  }

  function atBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 24;
  }

  function add(lines) {
    if (!lines.length) return;
    const follow = atBottom();
    list.append(...lines.map(lineEl));
    while (list.childElementCount > MAX_LINES) list.firstElementChild.remove();
    empty.hidden = list.childElementCount > 0;
    if (follow) scroller.scrollTop = scroller.scrollHeight;
  }

  function applyLevel() {
    const min = LEVELS[level.control.value];
    for (const li of list.children) li.hidden = LEVELS[li.dataset.level] < min;
  }

  async function load() {
    const ticket = ++requested;
    const params = new URLSearchParams({ limit: String(LIMIT) });
    if (source.control.value) params.set('source', source.control.value);
    try {
      const answer = await api.get(`/api/v1/logs?${params}`);
      if (!alive || ticket !== requested) return;
      rebuildSources(answer?.sources ?? (answer?.lines ?? []).map((l) => l.source).filter(Boolean));
      list.replaceChildren();
      held = [];
      setText(held_, '');
      add(answer?.lines ?? []);
      empty.hidden = list.childElementCount > 0;
      scroller.scrollTop = scroller.scrollHeight;
    } catch (error) {
      if (alive && error?.status !== 401)
        showError(error, { context: 'The log could not be read' });
    }
  }

  function togglePause() {
    paused = !paused;
    pause.setAttribute('aria-pressed', String(paused));
    setText(pause, paused ? 'Resume' : 'Pause');
    if (!paused) {
      add(held);
      held = [];
      setText(held_, '');
    }
  }

  source.control.addEventListener('change', load);
  level.control.addEventListener('change', applyLevel);

  const unsubscribe = store.subscribe((change) => {
    if (change.kind === 'status') rebuildSources();
    if (change.kind !== 'log') return;
    const line = change.line;
    if (line.source && !knownSources.has(line.source)) {
      knownSources.add(line.source);
      rebuildSources();
    }
    if (!sourceMatches(source.control.value, line.source)) return;
    if (paused) {
      held.push(line);
      if (held.length > MAX_LINES) held.shift();
      setText(held_, `${held.length} new line${held.length === 1 ? '' : 's'} waiting`);
      return;
    }
    add([line]);
  });

  rebuildSources();
  load();
  return () => {
    alive = false;
    unsubscribe();
  };
}
