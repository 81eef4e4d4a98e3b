'use strict';
/**
 * What a key shows: its title and its state (0 or 1), from the link's state and what the
 * agent last said. Pure functions, so every face can be read back in a test.
 *
 *   Toggle group   "Main\nLIVE", "Main\nidle", "Main\nwaiting", ...; state 1 while the group
 *                  is switched on (armed, waiting, starting, live, degraded): a press stops it
 *   Toggle target  "youtube\nLIVE", "youtube\non", "youtube\noff", "youtube\nretrying", ...;
 *                  state 1 while the target is switched on
 *   Start/Stop all the person's own title (null: Stream Deck keeps it) while the agent answers
 *
 * While the agent cannot be used every key says why on its second line: "offline" (nothing
 * answers), "no token", "bad token", "set up" (the agent URL is wrong), "…" (connecting).
 */

/** Group states in which the group is switched on. */
const GROUP_ON = new Set(['armed', 'waiting', 'starting', 'live', 'degraded']);

const LINK_WORDS = {
  waiting: '…', // the plugin has not read its settings yet
  connecting: '…',
  offline: 'offline',
  unauthorized: 'bad token',
  'no-token': 'no token',
  'bad-url': 'set up',
};

function linkWord(link) {
  return LINK_WORDS[link] || link;
}

function groupWord(state) {
  return state === 'live' ? 'LIVE' : state;
}

function targetWord(target) {
  if (!target.enabled || target.state === 'disabled') return 'off';
  if (target.state === 'live') return 'LIVE';
  if (target.state === 'idle') return 'on'; // switched on; its group is not running
  return target.state; // waiting, connecting, retrying, failed
}

/**
 * @param {{link: string, id?: string, group?: {name: string, state: string}, label?: string}} view
 *        `label`: the group's name when its state is not known (the agent is away)
 */
function groupFace({ link, id, group, label: known }) {
  if (!id) return { title: 'choose\ngroup', state: 0 };
  const label = group ? group.name : known || id;
  if (link !== 'online') return { title: `${label}\n${linkWord(link)}`, state: 0 };
  if (!group) return { title: `${id}\nmissing`, state: 0 };
  return { title: `${label}\n${groupWord(group.state)}`, state: GROUP_ON.has(group.state) ? 1 : 0 };
}

/** @param {{link: string, id?: string, target?: {state: string, enabled: boolean}}} view */
function targetFace({ link, id, target }) {
  if (!id) return { title: 'choose\ntarget', state: 0 };
  if (link !== 'online') return { title: `${id}\n${linkWord(link)}`, state: 0 };
  if (!target) return { title: `${id}\nmissing`, state: 0 };
  return { title: `${id}\n${targetWord(target)}`, state: target.enabled ? 1 : 0 };
}

/** Start all / Stop all: the person's title while online, else why the key cannot work. */
function allFace({ link }) {
  return { title: link === 'online' ? null : linkWord(link), state: 0 };
}

module.exports = { groupFace, targetFace, allFace, linkWord, GROUP_ON };
