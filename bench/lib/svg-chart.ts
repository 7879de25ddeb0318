/**
 * The chart of bench/run.ts as a hand-written SVG (no charting package): the
 * spike's per-second timeline (orders accepted, orders COMPLETED, webhook
 * deliveries against the configured rate) above the sustained run's
 * COMPLETED orders per second of each system.
 */

interface Series {
  name: string;
  color: string;
  values: number[];
  dashed?: boolean;
}

export interface ChartInput {
  spike?: { rate: number; webhooks: number[]; completed: number[]; accepted: number[] };
  sustained?: { name: string; perSecond: number[] }[];
}

const WIDTH = 900;
const PANEL_HEIGHT = 260;
const MARGIN = { left: 60, right: 20, top: 40, bottom: 40 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A "nice" axis maximum: 1, 2 or 5 times a power of ten, at least the data maximum. */
function niceMax(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  return [1, 2, 5, 10].map((m) => m * p).find((v) => v >= x) ?? 10 * p;
}

function panel(title: string, xLabel: string, series: Series[], top: number, log: boolean): string {
  const w = WIDTH - MARGIN.left - MARGIN.right;
  const h = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const n = Math.max(2, ...series.map((s) => s.values.length));
  const maxV = niceMax(Math.max(1, ...series.flatMap((s) => s.values)));
  // A log scale keeps a 500/s spike and a 20/s webhook rate readable in one panel.
  const scale = (v: number) => (log ? Math.log10(1 + v) / Math.log10(1 + maxV) : v / maxV);
  const x = (i: number) => MARGIN.left + (i / (n - 1)) * w;
  const y = (v: number) => top + MARGIN.top + h - scale(Math.max(0, v)) * h;
  const out: string[] = [
    `<text x="${MARGIN.left}" y="${top + 22}" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<line x1="${MARGIN.left}" y1="${y(0)}" x2="${MARGIN.left + w}" y2="${y(0)}" stroke="#444"/>`,
    `<line x1="${MARGIN.left}" y1="${top + MARGIN.top}" x2="${MARGIN.left}" y2="${y(0)}" stroke="#444"/>`,
  ];
  const ticks = log
    ? [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000].filter((t) => t <= maxV)
    : [0, 0.25, 0.5, 0.75, 1].map((t) => t * maxV);
  for (const t of ticks) {
    out.push(
      `<line x1="${MARGIN.left}" y1="${y(t).toFixed(1)}" x2="${MARGIN.left + w}" y2="${y(t).toFixed(1)}" stroke="#ddd"/>`,
      `<text x="${MARGIN.left - 6}" y="${(y(t) + 4).toFixed(1)}" font-size="11" text-anchor="end">${Math.round(t)}</text>`,
    );
  }
  const step = niceMax(n / 10);
  for (let i = 0; i < n; i += step) {
    out.push(
      `<text x="${x(i).toFixed(1)}" y="${y(0) + 16}" font-size="11" text-anchor="middle">${i}</text>`,
    );
  }
  out.push(
    `<text x="${MARGIN.left + w / 2}" y="${top + PANEL_HEIGHT - 6}" font-size="12" text-anchor="middle">${esc(xLabel)}</text>`,
  );
  series.forEach((s, k) => {
    if (s.values.length) {
      const pts = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
      out.push(
        `<polyline fill="none" stroke="${s.color}" stroke-width="1.6"${s.dashed ? ' stroke-dasharray="6 4"' : ''} points="${pts}"/>`,
      );
    }
    const lx = MARGIN.left + 10 + k * 200;
    out.push(
      `<line x1="${lx}" y1="${top + MARGIN.top - 8}" x2="${lx + 18}" y2="${top + MARGIN.top - 8}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
      `<text x="${lx + 22}" y="${top + MARGIN.top - 4}" font-size="12">${esc(s.name)}</text>`,
    );
  });
  return out.join('\n');
}

/** The whole chart; a panel whose data is missing is left out. */
export function renderChart(input: ChartInput): string {
  const panels: string[] = [];
  if (input.spike) {
    const s = input.spike;
    const n = Math.max(s.webhooks.length, s.completed.length, s.accepted.length);
    panels.push(
      panel(
        'Spike: per one-second window (log scale)',
        'seconds since the first POST',
        [
          { name: 'orders accepted', color: COLORS[0]!, values: s.accepted },
          { name: 'orders COMPLETED', color: COLORS[2]!, values: s.completed },
          { name: 'webhooks delivered', color: COLORS[1]!, values: s.webhooks },
          {
            name: `WEBHOOK_RATE_PER_SECOND=${s.rate}`,
            color: '#555',
            values: Array.from({ length: n }, () => s.rate),
            dashed: true,
          },
        ],
        panels.length * PANEL_HEIGHT,
        true,
      ),
    );
  }
  if (input.sustained?.length) {
    panels.push(
      panel(
        'Sustained: orders COMPLETED per second',
        'seconds of the counted window',
        input.sustained.map((x, i) => ({
          name: x.name,
          color: COLORS[i % COLORS.length]!,
          values: x.perSecond,
        })),
        panels.length * PANEL_HEIGHT,
        false,
      ),
    );
  }
  if (!panels.length)
    panels.push(`<text x="20" y="40" font-size="14">no spike or sustained results yet</text>`);
  const height = Math.max(1, panels.length) * PANEL_HEIGHT;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...panels,
    '</svg>',
    '',
  ].join('\n');
}
