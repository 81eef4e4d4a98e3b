/**
 * A target's bitrate over the last five minutes as a small SVG line.
 *
 * Points come from `stats` events (about one a second); x is the time in the window, y the
 * bitrate against the window's peak. A gap of more than a few seconds without figures (the
 * group was stopped) breaks the line instead of drawing a slope across it.
 */

import { svg, attr } from './dom.js';
import { HISTORY_MS } from './store.js';
import * as fmt from './format.js';

const WIDTH = 300;
const HEIGHT = 40;
const GAP_MS = 5000;

export class Sparkline {
  constructor(targetId) {
    this.line = svg('path', { class: 'spark-line' });
    this.area = svg('path', { class: 'spark-area' });
    this.el = svg(
      'svg',
      {
        class: 'spark',
        viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
        preserveAspectRatio: 'none',
        role: 'img',
        focusable: 'false',
        'data-testid': `spark-${targetId}`,
        'aria-label': 'Bitrate over the last 5 minutes: no figures yet',
      },
      svg('line', { class: 'spark-base', x1: 0, y1: HEIGHT - 0.5, x2: WIDTH, y2: HEIGHT - 0.5 }),
      this.area,
      this.line,
    );
  }

  /** Draw `points` ([{t, v}], oldest first) as of `now` (ms). */
  update(points, now = Date.now()) {
    const start = now - HISTORY_MS;
    const visible = (points ?? []).filter((p) => p.t >= start);
    this.el.dataset.points = String(visible.length);
    if (!visible.length) {
      attr(this.line, 'd', null);
      attr(this.area, 'd', null);
      attr(this.el, 'aria-label', 'Bitrate over the last 5 minutes: no figures yet');
      return;
    }
    const values = visible.map((p) => p.v);
    const peak = Math.max(...values);
    const scale = Math.max(peak, 1) * 1.1;
    const x = (t) => (((t - start) / HISTORY_MS) * WIDTH).toFixed(1);
    const y = (v) => (HEIGHT - 1 - (v / scale) * (HEIGHT - 3)).toFixed(1);

    let line = '';
    let area = '';
    let runStart = null;
    let previous = null;
    const closeRun = () => {
      if (runStart !== null) area += `L${x(previous.t)},${HEIGHT}L${x(runStart.t)},${HEIGHT}Z`;
    };
    for (const point of visible) {
      const joined = previous && point.t - previous.t <= GAP_MS;
      if (!joined) {
        closeRun();
        runStart = point;
        // A run of one point still shows: a short flat stroke.
        line += `M${x(point.t)},${y(point.v)}h0.5`;
        area += `M${x(point.t)},${y(point.v)}`;
      } else {
        line += `L${x(point.t)},${y(point.v)}`;
        area += `L${x(point.t)},${y(point.v)}`;
      }
      previous = point;
    }
    closeRun();
    attr(this.line, 'd', line);
    attr(this.area, 'd', area);
    const now_ = values[values.length - 1];
    const low = Math.min(...values);
    attr(
      this.el,
      'aria-label',
      `Bitrate over the last 5 minutes: now ${fmt.bitrate(now_)}, ` +
        `peak ${fmt.bitrate(peak)}, lowest ${fmt.bitrate(low)}`,
    );
  }
}
