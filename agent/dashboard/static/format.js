/** Figures and states as a person reads them. */

const whole = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat(undefined, {
  minimumFractionDigits: 1,
  maximumFractionDigits: 1,
});
const twoDecimals = new Intl.NumberFormat(undefined, {
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
});

export const UNKNOWN = '–';

const known = (value) => value !== null && value !== undefined && Number.isFinite(Number(value));

/** 850 → "850 kbit/s", 4512.3 → "4.51 Mbit/s". */
export function bitrate(kbps) {
  if (!known(kbps)) return UNKNOWN;
  const v = Number(kbps);
  if (v >= 10000) return `${oneDecimal.format(v / 1000)} Mbit/s`;
  if (v >= 1000) return `${twoDecimals.format(v / 1000)} Mbit/s`;
  return `${whole.format(v)} kbit/s`;
}

export function fps(value) {
  if (!known(value)) return UNKNOWN;
  const v = Number(value);
  return v >= 100 ? whole.format(v) : oneDecimal.format(v);
}

export function count(value) {
  return known(value) ? whole.format(Number(value)) : UNKNOWN;
}

/** Seconds as "m:ss" or "h:mm:ss". */
export function duration(seconds) {
  if (!known(seconds) || seconds < 0) return UNKNOWN;
  const total = Math.floor(Number(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

export function resolution(width, height) {
  return known(width) && known(height) ? `${width}×${height}` : UNKNOWN;
}

/** An ISO-8601 string or epoch seconds as a local clock time (14:03:07). */
export function clock(value) {
  if (value === null || value === undefined || value === '') return '';
  const date = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function dateTime(value) {
  if (!value) return UNKNOWN;
  const date = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

const STATE_LABELS = {
  // groups
  idle: 'Idle',
  armed: 'Armed',
  waiting: 'Waiting for OBS',
  starting: 'Starting',
  live: 'Live',
  degraded: 'Degraded',
  // targets
  disabled: 'Off',
  connecting: 'Connecting',
  retrying: 'Retrying',
  failed: 'Failed',
  stopping: 'Stopping',
  // ingest
  stopped: 'Stopped',
  listening: 'Listening',
  receiving: 'Receiving',
  ended: 'Ended',
};

export function stateLabel(state) {
  if (!state) return UNKNOWN;
  return STATE_LABELS[state] ?? state.charAt(0).toUpperCase() + state.slice(1);
}

/** The colour family of a state: ok, busy, warn, bad or idle (see .badge in style.css). */
export function tone(state) {
  switch (state) {
    case 'live':
    case 'receiving':
      return 'ok';
    case 'starting':
    case 'connecting':
    case 'armed':
    case 'waiting':
    case 'listening':
    case 'stopping':
      return 'busy';
    case 'degraded':
    case 'retrying':
    case 'ended':
      return 'warn';
    case 'failed':
      return 'bad';
    default:
      return 'idle';
  }
}

export const MODE_LABELS = { passthrough: 'Passthrough', reencode: 'Re-encode' };
