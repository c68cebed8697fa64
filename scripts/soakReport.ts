/**
 * The report of `npm run soak`: figures over the samples (percentiles, least-squares RSS slope), the
 * summary table printed to stdout, and a self-contained HTML page with inline SVG line charts (no script,
 * no stylesheet, no font or image fetched from anywhere). Pure: data in, strings out.
 */

/** One look at the daemon, every sampling interval. `null`: not available at that moment. */
export interface SoakSample {
  /** seconds since the soak started */
  t: number;
  at: string;
  daemonRssMb: number | null;
  workerRssMb: number | null;
  workerPid: number | null;
  heapUsedMb: number | null;
  loopP50Ms: number | null;
  loopP99Ms: number | null;
  loopMaxMs: number | null;
  /** sum of `process.resources` */
  handles: number | null;
  resources: Record<string, number> | null;
  journalPending: number | null;
  outboxMessages: number | null;
  jobsQueued: number | null;
  jobsRunning: number | null;
  /** waiting-model + waiting-capability */
  jobsWaiting: number | null;
  jobsDone: number | null;
  jobsFailed: number | null;
  jobsDropped: number | null;
  /** committed to the journal so far, all routes */
  accepted: number | null;
  /** rejected so far, all codes */
  rejected: number | null;
  /** accepted per second since the previous sample */
  ingestRate: number | null;
  rejectRate: number | null;
  /** database, WAL included, MB */
  dbMb: number | null;
  mediaMb: number | null;
  /** results seen on MQTT so far */
  results: number;
  /** how long GET /api/status took, ms */
  statusMs: number | null;
  error?: string;
}

/** A reading published with a unique value and looked for through /api/readings. */
export interface SoakProbe {
  seq: number;
  /** seconds since the soak started, at publish */
  t: number;
  value: number;
  /** publish to PUBACK (the embedded broker acknowledges after the journal commit), ms */
  ackMs: number | null;
  /** publish to the reading being served by /api/readings, ms; null: not seen in time */
  storedMs: number | null;
  error?: string;
}

/** A result message seen on `outpost/<gw>/results/#`. */
export interface SoakResult {
  t: number;
  kind: string;
  source: string;
  latencyMs: number | null;
}

export interface SoakRun {
  startedAt: string;
  plannedSeconds: number;
  actualSeconds: number;
  stoppedEarly: string | null;
  runner: string;
  model: string;
  projector: string | null;
  traffic: string;
  samples: SoakSample[];
  probes: SoakProbe[];
  results: SoakResult[];
  events: number;
  errorsPublished: number;
  sent: { simulated: number | null; probes: number; bad: number };
  simulator: Record<string, unknown> | null;
  simulatorExit: string;
  /** accepted/rejected totals and job counts from the last status before the stop */
  final: SoakSample | null;
  drainedMs: number | null;
  exitCode: number | string | null;
  stopMs: number | null;
  workerLeftRunning: boolean | null;
  missingStatus: string[];
}

// ---------------------------------------------------------------------------------------------
// Figures

/** Nearest-rank percentile of the finite values; null when there are none. */
export function percentile(values: readonly (number | null)[], p: number): number | null {
  const xs = values.filter((v): v is number => v !== null && Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const rank = Math.ceil((p / 100) * xs.length);
  return xs[Math.min(xs.length - 1, Math.max(0, rank - 1))]!;
}

export function maxOf(values: readonly (number | null)[]): number | null {
  let max: number | null = null;
  for (const v of values) if (v !== null && Number.isFinite(v) && (max === null || v > max)) max = v;
  return max;
}

const firstOf = (values: readonly (number | null)[]) => values.find((v) => v !== null) ?? null;
const lastOf = (values: readonly (number | null)[]) => [...values].reverse().find((v) => v !== null) ?? null;

/**
 * Least-squares slope of y over t (seconds) across the second half of the run, in y units per hour: the
 * first half holds warm-up (model load, caches, SQLite page cache) that says nothing about a leak.
 */
export function slopePerHour(points: readonly { t: number; y: number | null }[]): number | null {
  if (points.length === 0) return null;
  const end = points[points.length - 1]!.t;
  const half = points.filter((p): p is { t: number; y: number } => p.t >= end / 2 && p.y !== null);
  if (half.length < 3) return null;
  const n = half.length;
  const meanT = half.reduce((s, p) => s + p.t, 0) / n;
  const meanY = half.reduce((s, p) => s + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of half) {
    num += (p.t - meanT) * (p.y - meanY);
    den += (p.t - meanT) ** 2;
  }
  return den === 0 ? null : (num / den) * 3600;
}

const fmt = (v: number | null, digits = 1, unit = ''): string =>
  v === null ? 'n/a' : `${v.toFixed(digits)}${unit ? ` ${unit}` : ''}`;

const count = (v: number | null | undefined): string => (v === null || v === undefined ? 'n/a' : String(v));

/** The summary: one row per figure, label and value, for stdout and the page alike. */
export function summaryRows(run: SoakRun): [string, string][] {
  const s = run.samples;
  const col = <K extends keyof SoakSample>(key: K) => s.map((x) => x[key] as number | null);
  const rss = (key: 'daemonRssMb' | 'workerRssMb' | 'heapUsedMb') =>
    `${fmt(firstOf(col(key)))} / ${fmt(lastOf(col(key)))} / ${fmt(maxOf(col(key)))} MB`;
  const slope = (key: 'daemonRssMb' | 'workerRssMb' | 'dbMb') => {
    const v = slopePerHour(s.map((x) => ({ t: x.t, y: x[key] })));
    if (v === null) return 'n/a (too few samples)';
    // Over a few minutes the slope is warm-up (model load, page cache), not a trend: say so.
    const caveat = run.actualSeconds < 1200 ? ' (short run: warm-up, not a trend)' : '';
    return `${v >= 0 ? '+' : ''}${v.toFixed(1)} MB/h${caveat}`;
  };
  const stored = run.probes.map((p) => p.storedMs);
  const acks = run.probes.map((p) => p.ackMs);
  const lost = run.probes.filter((p) => p.storedMs === null).length;
  const latencies = run.results.map((r) => r.latencyMs);
  const byKind = new Map<string, number>();
  for (const r of run.results) byKind.set(r.kind, (byKind.get(r.kind) ?? 0) + 1);
  const kinds = [...byKind].map(([k, n]) => `${k} ${n}`).join(', ');
  const f = run.final;
  const sent = (run.sent.simulated ?? 0) + run.sent.probes + run.sent.bad;
  const sim = run.simulator;
  const pids = new Set(s.map((x) => x.workerPid).filter((p) => p !== null));
  const handles = col('handles');
  const rows: [string, string][] = [
    [
      'duration',
      `${fmt(run.actualSeconds / 60, 2)} min of ${fmt(run.plannedSeconds / 60, 2)}` +
        (run.stoppedEarly ? ` (stopped early: ${run.stoppedEarly})` : ''),
    ],
    ['runner / model', `${run.runner} / ${run.model}${run.projector ? ` + ${run.projector}` : ''}`],
    ['traffic', run.traffic],
    [
      'messages sent',
      `${sent} (simulated ${count(run.sent.simulated)}, probes ${run.sent.probes}, bad ${run.sent.bad})`,
    ],
    [
      'simulator',
      sim
        ? `frames ${count(sim.frames as number)} (skipped ${count(sim.skippedFrames as number)}), clips ${count(sim.clips as number)} (skipped ${count(sim.skippedClips as number)}), anomalies ${count(sim.anomalies as number)}; ${run.simulatorExit}`
        : run.simulatorExit,
    ],
    ['accepted / rejected', `${count(f?.accepted)} / ${count(f?.rejected)}`],
    ['results (MQTT)', `${run.results.length}${kinds ? ` (${kinds})` : ''}; events ${run.events}`],
    [
      'jobs done / failed / dropped / left',
      f
        ? `${count(f.jobsDone)} / ${count(f.jobsFailed)} / ${count(f.jobsDropped)} / ${(f.jobsQueued ?? 0) + (f.jobsRunning ?? 0) + (f.jobsWaiting ?? 0)}`
        : 'n/a',
    ],
    ['daemon RSS start / end / max', rss('daemonRssMb')],
    ['worker RSS start / end / max', rss('workerRssMb')],
    ['daemon heap start / end / max', rss('heapUsedMb')],
    ['RSS slope, 2nd half (daemon)', slope('daemonRssMb')],
    ['RSS slope, 2nd half (worker)', slope('workerRssMb')],
    ['database growth, 2nd half', slope('dbMb')],
    ['worker processes seen', `${pids.size}${pids.size > 1 ? ' (restarted)' : ''}`],
    [
      'event-loop p99 max / max',
      `${fmt(maxOf(col('loopP99Ms')), 2, 'ms')} / ${fmt(maxOf(col('loopMaxMs')), 2, 'ms')}`,
    ],
    [
      'handles start / end / max',
      `${count(firstOf(handles))} / ${count(lastOf(handles))} / ${count(maxOf(handles))}`,
    ],
    [
      'max queue: journal / outbox / jobs queued / waiting',
      `${count(maxOf(col('journalPending')))} / ${count(maxOf(col('outboxMessages')))} / ${count(maxOf(col('jobsQueued')))} / ${count(maxOf(col('jobsWaiting')))}`,
    ],
    [
      'probe ingest->stored p50 / p99 / max',
      `${fmt(percentile(stored, 50), 0, 'ms')} / ${fmt(percentile(stored, 99), 0, 'ms')} / ${fmt(maxOf(stored), 0, 'ms')} (${run.probes.length} probes, ${lost} not seen)`,
    ],
    [
      'probe publish->PUBACK p50 / p99',
      `${fmt(percentile(acks, 50), 0, 'ms')} / ${fmt(percentile(acks, 99), 0, 'ms')}`,
    ],
    [
      'job latency p50 / p99 / max',
      `${fmt(percentile(latencies, 50), 0, 'ms')} / ${fmt(percentile(latencies, 99), 0, 'ms')} / ${fmt(maxOf(latencies), 0, 'ms')}`,
    ],
    [
      'queues drained after traffic stopped',
      run.drainedMs === null ? 'no (within 30 s)' : `in ${fmt(run.drainedMs / 1000, 1, 's')}`,
    ],
    [
      'daemon exit code (SIGTERM)',
      `${count(run.exitCode as number)}${run.stopMs === null ? '' : ` after ${fmt(run.stopMs, 0, 'ms')}`}` +
        (run.workerLeftRunning ? '; worker left running!' : ''),
    ],
  ];
  if (run.missingStatus.length > 0) rows.push(['missing in /api/status', run.missingStatus.join(', ')]);
  return rows;
}

/** The summary as an aligned two-column text table. */
export function summaryTable(rows: readonly [string, string][]): string {
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n');
}

// ---------------------------------------------------------------------------------------------
// Charts

export interface ChartLine {
  name: string;
  color: string;
  points: readonly (readonly [number, number | null])[];
  /** draw points only (each its own event, e.g. a job's latency), not a line */
  dots?: boolean;
}

export interface Chart {
  title: string;
  unit: string;
  lines: readonly ChartLine[];
  /** right end of the time axis, seconds */
  xMax: number;
  /** a dashed vertical line at this time, seconds (when the traffic stopped) */
  markAt?: number;
}

const W = 880;
const H = 230;
const M = { left: 64, right: 16, top: 30, bottom: 34 };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A round step giving about `target` ticks over `span`. */
function niceStep(span: number, target: number): number {
  const raw = span / target;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  return power * (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 2.5 ? 2.5 : unit <= 5 ? 5 : 10);
}

function timeStep(span: number): number {
  const steps = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400];
  return steps.find((s) => span / s <= 10) ?? 86400;
}

const timeLabel = (t: number, span: number) =>
  span >= 7200 ? `${(t / 3600).toFixed(t % 3600 === 0 ? 0 : 1)} h` : span >= 120 ? `${t / 60} min` : `${t} s`;

const num = (v: number) => Number(v.toFixed(1)).toString();

/** One chart as inline SVG: y from 0 to a round maximum, time in seconds on x, gaps where data is null. */
export function svgChart(chart: Chart): string {
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const ys = chart.lines.flatMap((l) => l.points.map((p) => p[1]));
  const top = maxOf(ys);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img">`,
    `<title>${escapeHtml(chart.title)}</title>`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${M.left}" y="18" font-size="14" font-weight="bold" fill="#222">${escapeHtml(chart.title)}` +
      `<tspan font-weight="normal" fill="#666"> (${escapeHtml(chart.unit)})</tspan></text>`,
  ];
  const xSpan = Math.max(chart.xMax, 1);
  const yStep = niceStep(top === null || top <= 0 ? 1 : top, 4);
  const yMax = Math.max(yStep, Math.ceil((top ?? 0) / yStep) * yStep);
  const x = (t: number) => M.left + (Math.min(t, xSpan) / xSpan) * plotW;
  const y = (v: number) => M.top + plotH - (v / yMax) * plotH;

  for (let v = 0; v <= yMax + yStep / 1e6; v += yStep) {
    const yy = num(y(v));
    out.push(
      `<line x1="${M.left}" y1="${yy}" x2="${W - M.right}" y2="${yy}" stroke="#e4e4e4"/>`,
      `<text x="${M.left - 6}" y="${num(y(v) + 4)}" font-size="11" text-anchor="end" fill="#555">${escapeHtml(
        Number(v.toPrecision(6)).toString(),
      )}</text>`,
    );
  }
  const tStep = timeStep(xSpan);
  for (let t = 0; t <= xSpan + 1e-9; t += tStep) {
    const xx = num(x(t));
    out.push(
      `<line x1="${xx}" y1="${M.top + plotH}" x2="${xx}" y2="${M.top + plotH + 4}" stroke="#888"/>`,
      `<text x="${xx}" y="${M.top + plotH + 17}" font-size="11" text-anchor="middle" fill="#555">${timeLabel(t, xSpan)}</text>`,
    );
  }
  out.push(
    `<line x1="${M.left}" y1="${M.top + plotH}" x2="${W - M.right}" y2="${M.top + plotH}" stroke="#888"/>`,
    `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + plotH}" stroke="#888"/>`,
  );
  if (chart.markAt !== undefined && chart.markAt < xSpan) {
    const xx = num(x(chart.markAt));
    out.push(
      `<line x1="${xx}" y1="${M.top}" x2="${xx}" y2="${M.top + plotH}" stroke="#999" stroke-dasharray="4 3"/>`,
      `<text x="${xx}" y="${M.top + 10}" font-size="10" text-anchor="end" fill="#888" dx="-3">traffic stopped</text>`,
    );
  }
  if (top === null) {
    out.push(
      `<text x="${M.left + plotW / 2}" y="${M.top + plotH / 2}" font-size="13" text-anchor="middle" fill="#999">no data</text>`,
    );
  }

  for (const line of chart.lines) {
    const color = escapeHtml(line.color);
    if (line.dots) {
      for (const [t, v] of line.points) {
        if (v === null) continue;
        out.push(`<circle cx="${num(x(t))}" cy="${num(y(v))}" r="2.5" fill="${color}" fill-opacity="0.7"/>`);
      }
      continue;
    }
    let run: string[] = [];
    const flush = () => {
      if (run.length === 1)
        out.push(
          `<circle cx="${run[0]!.split(',')[0]}" cy="${run[0]!.split(',')[1]}" r="2" fill="${color}"/>`,
        );
      else if (run.length > 1) {
        out.push(`<polyline fill="none" stroke="${color}" stroke-width="1.6" points="${run.join(' ')}"/>`);
      }
      run = [];
    };
    for (const [t, v] of line.points) {
      if (v === null) flush();
      else run.push(`${num(x(t))},${num(y(v))}`);
    }
    flush();
  }

  // Legend, right-aligned on the title row.
  let lx = W - M.right;
  for (const line of [...chart.lines].reverse()) {
    const label = escapeHtml(line.name);
    lx -= line.name.length * 6.6 + 28;
    out.push(
      `<rect x="${num(lx)}" y="9" width="12" height="10" fill="${escapeHtml(line.color)}"/>`,
      `<text x="${num(lx + 16)}" y="18" font-size="11" fill="#333">${label}</text>`,
    );
  }
  out.push('</svg>');
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Page

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

/** The charts of a run: one per concern, each series over time. */
export function runCharts(run: SoakRun): Chart[] {
  const s = run.samples;
  const xMax = Math.max(run.actualSeconds, ...s.map((x) => x.t), 1);
  const series = (key: keyof SoakSample) =>
    s.map((x) => [x.t, (x[key] as number | null | undefined) ?? null] as const);
  const line = (name: string, key: keyof SoakSample, i: number): ChartLine => ({
    name,
    color: COLORS[i % COLORS.length]!,
    points: series(key),
  });
  const kinds = [...new Set(run.results.map((r) => r.kind))].sort();
  const charts: Chart[] = [
    {
      title: 'Resident memory',
      unit: 'MB',
      xMax,
      lines: [
        line('daemon RSS', 'daemonRssMb', 0),
        line('worker RSS', 'workerRssMb', 1),
        line('daemon heap', 'heapUsedMb', 2),
      ],
    },
    {
      title: 'Event-loop delay (last 10 s window)',
      unit: 'ms',
      xMax,
      lines: [line('p50', 'loopP50Ms', 0), line('p99', 'loopP99Ms', 1), line('max', 'loopMaxMs', 3)],
    },
    { title: 'Active handles', unit: 'count', xMax, lines: [line('handles', 'handles', 4)] },
    {
      title: 'Queue depths',
      unit: 'count',
      xMax,
      lines: [
        line('journal pending', 'journalPending', 0),
        line('outbox', 'outboxMessages', 1),
        line('jobs queued', 'jobsQueued', 2),
        line('jobs running', 'jobsRunning', 3),
        line('jobs waiting', 'jobsWaiting', 4),
      ],
    },
    {
      title: 'Ingest',
      unit: 'messages/s',
      xMax,
      lines: [line('accepted', 'ingestRate', 0), line('rejected', 'rejectRate', 1)],
    },
    {
      title: 'Probe latency',
      unit: 'ms',
      xMax,
      lines: [
        {
          name: 'publish->stored',
          color: COLORS[0]!,
          points: run.probes.map((p) => [p.t, p.storedMs] as const),
        },
        {
          name: 'publish->PUBACK',
          color: COLORS[2]!,
          points: run.probes.map((p) => [p.t, p.ackMs] as const),
        },
      ],
    },
    {
      title: 'Job latency (each result)',
      unit: 'ms',
      xMax,
      lines: kinds.map((kind, i) => ({
        name: kind,
        color: COLORS[i % COLORS.length]!,
        dots: true,
        points: run.results.filter((r) => r.kind === kind).map((r) => [r.t, r.latencyMs] as const),
      })),
    },
    {
      title: 'Storage',
      unit: 'MB',
      xMax,
      lines: [line('database + WAL', 'dbMb', 0), line('media', 'mediaMb', 1)],
    },
    { title: '/api/status response time', unit: 'ms', xMax, lines: [line('GET /api/status', 'statusMs', 5)] },
  ];
  return charts.map((chart) => ({ ...chart, markAt: run.actualSeconds }));
}

/** The whole report as one self-contained HTML page. */
export function reportHtml(run: SoakRun): string {
  const rows = summaryRows(run)
    .map(([label, value]) => `<tr><th>${escapeHtml(label)}</th><td>${escapeHtml(value)}</td></tr>`)
    .join('\n');
  const charts = runCharts(run)
    .map((chart) => `<figure>\n${svgChart(chart)}\n</figure>`)
    .join('\n');
  const errors = run.samples.filter((s) => s.error !== undefined);
  const errorList =
    errors.length === 0
      ? ''
      : `<h2>Sampling errors</h2>\n<ul>\n${errors
          .slice(0, 50)
          .map((s) => `<li>${escapeHtml(`${s.t.toFixed(0)} s: ${s.error}`)}</li>`)
          .join('\n')}\n</ul>`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<title>Outpost soak ${escapeHtml(run.startedAt)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 920px; }
table { border-collapse: collapse; margin-bottom: 24px; }
th, td { text-align: left; padding: 3px 12px 3px 0; border-bottom: 1px solid #eee; font-size: 13px; vertical-align: top; }
th { font-weight: 600; white-space: nowrap; }
figure { margin: 0 0 16px 0; }
svg { max-width: 100%; height: auto; border: 1px solid #eee; }
</style>
</head>
<body>
<h1>Outpost soak, ${escapeHtml(run.startedAt)}</h1>
<table>
${rows}
</table>
${charts}
${errorList}
<p>Samples, probes and results: samples.json next to this file; the daemon's log: daemon.log.</p>
</body>
</html>
`;
}
