/**
 * A lab run's timeline as a self-contained SVG (`npm run lab -- --svg FILE`): each ping's RTT over time,
 * lost pings as red ticks, and vertical lines for the cut, the repair, health changes and route switches.
 * Pure (data in, string out) so that every lab mode can draw its run: it knows nothing of ping or of the
 * daemons' logs, the caller converts those into `Timeline` (ha-lab.ts: timelinePings, timelineEvents).
 */
import { resolve as resolvePath } from 'node:path';

export interface TimelinePing {
  /** Send time, unix ms. */
  at: number;
  /** Round-trip time in ms; null: never answered. */
  rttMs: number | null;
  /** Which ping this belongs to (e.g. a direction); each series gets its own colour and row of lost marks. */
  series?: string;
}

/**
 * `--svg FILE` or `--svg=FILE` among a lab's arguments: FILE resolved against `cwd` (npm runs scripts
 * in the package root; the caller passes INIT_CWD, where the user typed `npm run lab`), '' when the
 * name is missing, undefined without --svg.
 */
export function svgArg(argv: string[], cwd: string): string | undefined {
  const i = argv.findIndex((a) => a === '--svg' || a.startsWith('--svg='));
  if (i < 0) return undefined;
  const v = argv[i]!.startsWith('--svg=') ? argv[i]!.slice('--svg='.length) : argv[i + 1];
  return v && !v.startsWith('--') ? resolvePath(cwd, v) : '';
}

export type TimelineEventKind = 'cut' | 'repair' | 'health' | 'route-switch';

export interface TimelineEvent {
  /** unix ms */
  at: number;
  /** Who saw it (e.g. 'on-prem'); shown before the label. Leave it out for the lab's own actions. */
  side?: string;
  kind: TimelineEventKind;
  label: string;
}

export interface Timeline {
  title: string;
  subtitle?: string;
  /** unix ms: x = 0. */
  start: number;
  /** What `start` is, for the x axis title (default 'start'). */
  startLabel?: string;
  pings: TimelinePing[];
  events: TimelineEvent[];
  /** Top of the RTT axis; higher RTTs are drawn at the top. Default: the highest RTT, rounded up. */
  rttMaxMs?: number;
}

const WIDTH = 1000;
const LEFT = 70;
const RIGHT = WIDTH - 20;
const PLOT_H = 250;
const ROW_H = 14;
const LANE_H = 10;
/** Average advance of the 11 px sans-serif labels: enough to keep labels in one row from overlapping. */
const CHAR_W = 6.2;
const SERIES_COLOURS = ['#1565c0', '#00897b', '#6d4c41', '#5e35b1'];
const LOST_COLOUR = '#d32f2f';
const KIND_STYLE: Record<TimelineEventKind, { colour: string; dash: string; name: string }> = {
  cut: { colour: '#b71c1c', dash: '', name: 'cut' },
  repair: { colour: '#2e7d32', dash: '', name: 'repair' },
  health: { colour: '#ef6c00', dash: '4 3', name: 'health change' },
  'route-switch': { colour: '#6a1b9a', dash: '1 3', name: 'route switch' },
};

/** Text and attribute values: the five XML specials, and characters XML 1.0 does not allow become '?'. */
export function escapeXml(s: string): string {
  const allowed = (n: number) =>
    n === 9 || n === 10 || n === 13 || (n >= 0x20 && n < 0xd800) || (n > 0xdfff && n < 0xfffe) || n > 0xffff;
  return Array.from(s, (c) => (allowed(c.codePointAt(0)!) ? c : '?'))
    .join('')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** A 1/2/5 x 10^n step giving about `count` ticks over [lo, hi], and the range widened to whole steps. */
export function niceAxis(lo: number, hi: number, count: number): { lo: number; hi: number; step: number } {
  const span = hi > lo ? hi - lo : 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * mag >= raw) ?? 10) * mag;
  const a = Math.floor(lo / step + 1e-9) * step;
  const b = Math.ceil(hi / step - 1e-9) * step;
  return { lo: a, hi: b > a ? b : a + step, step };
}

function ticks(axis: { lo: number; hi: number; step: number }): string[] {
  const decimals = Math.max(0, -Math.floor(Math.log10(axis.step) + 1e-9));
  const out: string[] = [];
  for (let i = 0; axis.lo + i * axis.step <= axis.hi + axis.step / 1e6; i++) {
    const v = axis.lo + i * axis.step;
    out.push((Math.abs(v) < axis.step / 1e6 ? 0 : v).toFixed(decimals));
  }
  return out;
}

const f1 = (n: number) => (Math.round(n * 10) / 10).toString();
const textW = (s: string) => s.length * CHAR_W;
const fmtS = (ms: number) => `${ms >= 0 ? '+' : ''}${(ms / 1000).toFixed(3)} s`;

export function timelineSvg(t: Timeline): string {
  const pings = t.pings.filter(
    (p) => Number.isFinite(p.at) && (p.rttMs === null || Number.isFinite(p.rttMs)),
  );
  const events = t.events.filter((e) => Number.isFinite(e.at)).sort((a, b) => a.at - b.at);
  const seriesNames = [...new Set(pings.map((p) => p.series ?? ''))];
  const secs = [...pings, ...events].map((x) => (x.at - t.start) / 1000);
  const xAxis = niceAxis(Math.min(0, ...secs), Math.max(0, ...secs), 15);
  const rtts = pings.flatMap((p) => (p.rttMs === null ? [] : [p.rttMs]));
  const yAxis = niceAxis(0, t.rttMaxMs ?? Math.max(0, ...rtts), 5);
  const sx = (at: number) =>
    LEFT + (((at - t.start) / 1000 - xAxis.lo) / (xAxis.hi - xAxis.lo)) * (RIGHT - LEFT);

  // Event labels go in rows above the plot, each in the top row from which down all rows are free where
  // it starts: no label overlaps another, and no event's line (which runs down from its label) crosses one.
  const rowEnds: number[] = [];
  const labels = events.map((e) => {
    const text = e.side ? `${e.side}: ${e.label}` : e.label;
    const x = sx(e.at);
    const w = textW(text);
    const leftward = x + 3 + w > WIDTH - 2;
    const from = leftward ? x - 3 - w : x + 3;
    let row = rowEnds.length;
    while (row > 0 && rowEnds[row - 1]! + 6 <= from) row--;
    if (row === rowEnds.length) rowEnds.push(0);
    rowEnds[row] = leftward ? x : x + 3 + w;
    return { e, text, x, row, leftward };
  });

  const titleH = t.subtitle ? 46 : 30;
  const plotTop = titleH + rowEnds.length * ROW_H + 8;
  const plotBottom = plotTop + PLOT_H;
  const stripBottom = plotBottom + 6 + seriesNames.length * LANE_H;
  const axisY = stripBottom + 16;
  const legendY = axisY + 34;
  const height = legendY + 16;
  const sy = (rtt: number) => plotBottom - (Math.min(rtt, yAxis.hi) / yAxis.hi) * PLOT_H;
  const colour = (series: string) => SERIES_COLOURS[seriesNames.indexOf(series) % SERIES_COLOURS.length]!;

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text x="${LEFT}" y="20" font-size="15" font-weight="bold">${escapeXml(t.title)}</text>`,
  ];
  if (t.subtitle) out.push(`<text x="${LEFT}" y="37" fill="#444">${escapeXml(t.subtitle)}</text>`);

  // Grid and axes.
  for (const v of ticks(yAxis)) {
    const y = f1(sy(Number(v)));
    out.push(`<line x1="${LEFT}" x2="${RIGHT}" y1="${y}" y2="${y}" stroke="#e0e0e0"/>`);
    out.push(`<text class="y-tick" x="${LEFT - 6}" y="${y}" dy="4" text-anchor="end">${v}</text>`);
  }
  for (const v of ticks(xAxis)) {
    const x = f1(sx(t.start + Number(v) * 1000));
    out.push(`<line x1="${x}" x2="${x}" y1="${plotTop}" y2="${stripBottom}" stroke="#f0f0f0"/>`);
    out.push(`<text class="x-tick" x="${x}" y="${axisY}" text-anchor="middle">${v}</text>`);
  }
  out.push(
    `<rect x="${LEFT}" y="${plotTop}" width="${RIGHT - LEFT}" height="${stripBottom - plotTop}" fill="none" stroke="#9e9e9e"/>`,
    `<line x1="${LEFT}" x2="${RIGHT}" y1="${plotBottom}" y2="${plotBottom}" stroke="#9e9e9e"/>`,
    `<text x="${(LEFT + RIGHT) / 2}" y="${axisY + 16}" text-anchor="middle">seconds since ${escapeXml(t.startLabel ?? 'start')}</text>`,
    `<text transform="translate(16 ${plotTop + PLOT_H / 2}) rotate(-90)" text-anchor="middle">RTT (ms)</text>`,
  );

  // Answered pings: one polyline per stretch without loss (a gap shows where pings went unanswered);
  // lost pings: a red tick each in their series' row under the plot (named in the margin).
  for (const [i, name] of seriesNames.entries()) {
    const lane = plotBottom + 6 + i * LANE_H;
    out.push(
      `<text x="${LEFT - 6}" y="${lane + LANE_H - 1}" text-anchor="end" font-size="9" fill="${colour(name)}">${escapeXml(name || 'lost')}</text>`,
    );
    const stretches: string[][] = [[]];
    for (const p of pings.filter((q) => (q.series ?? '') === name).sort((a, b) => a.at - b.at)) {
      const x = f1(sx(p.at));
      if (p.rttMs === null) {
        if (stretches.at(-1)!.length) stretches.push([]);
        out.push(
          `<line class="lost" x1="${x}" x2="${x}" y1="${lane + 1}" y2="${lane + LANE_H - 1}" stroke="${LOST_COLOUR}"/>`,
        );
      } else {
        stretches.at(-1)!.push(`${x},${f1(sy(p.rttMs))}`);
      }
    }
    for (const s of stretches) {
      if (s.length > 1) {
        out.push(
          `<polyline fill="none" stroke="${colour(name)}" stroke-width="1.2" points="${s.join(' ')}"/>`,
        );
      } else if (s.length === 1) {
        const [x, y] = s[0]!.split(',');
        out.push(`<circle cx="${x}" cy="${y}" r="1.5" fill="${colour(name)}"/>`);
      }
    }
  }

  // Events: a line from the label's row down through the plot and the lost rows. The labels come after
  // all lines, with a white halo: where a line still meets a label (one drawn leftwards at the right
  // edge), the label stays readable.
  const ty = (row: number) => titleH + row * ROW_H + 11;
  for (const { e, x, row } of labels) {
    const st = KIND_STYLE[e.kind];
    const dash = st.dash ? ` stroke-dasharray="${st.dash}"` : '';
    out.push(
      `<g class="event"><title>${escapeXml(`${fmtS(e.at - t.start)} ${e.side ?? 'lab'} ${e.kind}: ${e.label}`)}</title>`,
      `<line x1="${f1(x)}" x2="${f1(x)}" y1="${ty(row) - 10}" y2="${stripBottom}" stroke="${st.colour}"${dash}/></g>`,
    );
  }
  for (const { e, text, x, row, leftward } of labels) {
    out.push(
      `<text x="${f1(leftward ? x - 3 : x + 3)}" y="${ty(row)}" text-anchor="${leftward ? 'end' : 'start'}" fill="${KIND_STYLE[e.kind].colour}" stroke="#fff" stroke-width="3" paint-order="stroke">${escapeXml(text)}</text>`,
    );
  }

  // Legend: the series, the lost mark, the event kinds.
  let lx = LEFT;
  const item = (swatch: string, text: string) => {
    out.push(swatch, `<text x="${lx + 22}" y="${legendY + 4}">${escapeXml(text)}</text>`);
    lx += 22 + textW(text) + 18;
  };
  for (const name of seriesNames) {
    item(
      `<line x1="${lx}" x2="${lx + 16}" y1="${legendY}" y2="${legendY}" stroke="${colour(name)}" stroke-width="2"/>`,
      name ? `RTT ${name}` : 'RTT',
    );
  }
  item(
    `<line x1="${lx + 8}" x2="${lx + 8}" y1="${legendY - 5}" y2="${legendY + 5}" stroke="${LOST_COLOUR}" stroke-width="2"/>`,
    'lost ping',
  );
  for (const kind of Object.keys(KIND_STYLE) as TimelineEventKind[]) {
    const st = KIND_STYLE[kind];
    if (!events.some((e) => e.kind === kind)) continue;
    const dash = st.dash ? ` stroke-dasharray="${st.dash}"` : '';
    item(
      `<line x1="${lx + 8}" x2="${lx + 8}" y1="${legendY - 7}" y2="${legendY + 7}" stroke="${st.colour}" stroke-width="1.5"${dash}/>`,
      st.name,
    );
  }
  out.push('</svg>', '');
  return out.join('\n');
}
