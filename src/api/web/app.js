// Outpost's live page: plain browser JS, no build step, no framework, nothing fetched from outside the
// gateway. Model output is untrusted text: it only ever reaches the page through textContent.

const TOKEN_KEY = 'outpost.token';
const STATUS_EVERY_MS = 5000;
const CHARTS_EVERY_MS = 30_000;
const MAX_FINDINGS = 100;
const MAX_SERIES = 24;
const SVG_NS = 'http://www.w3.org/2000/svg';

const $ = (id) => document.getElementById(id);
let token = localStorage.getItem(TOKEN_KEY) || '';

/** An element with attributes (`on*` functions become listeners) and children (strings become text). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'text') el.textContent = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  return el;
}

// --- access token -----------------------------------------------------------------------------------------

let tokenWait;
/** Opens the token form once; resolves when a token was entered. */
function needToken(note) {
  if (!tokenWait) {
    tokenWait = new Promise((resolve) => {
      const dialog = $('auth');
      $('auth-note').textContent = note;
      $('auth-form').onsubmit = (event) => {
        event.preventDefault();
        token = $('token').value.trim();
        if (!token) return;
        localStorage.setItem(TOKEN_KEY, token);
        $('forget').hidden = false;
        dialog.close();
        tokenWait = undefined;
        resolve();
      };
      dialog.showModal();
      $('token').focus();
    });
  }
  return tokenWait;
}

/** fetch() with the bearer token; on 401 asks for a token and tries again. */
async function api(path, init = {}) {
  for (;;) {
    const headers = new Headers(init.headers);
    if (token) headers.set('authorization', `Bearer ${token}`);
    const response = await fetch(path, { ...init, headers });
    if (response.status !== 401) return response;
    await needToken(
      token ? 'That token was refused; enter the current one.' : 'Enter the gateway token to continue.',
    );
  }
}

async function getJson(path, init) {
  const response = await api(path, init);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || `${path}: HTTP ${response.status}`);
  return body;
}

// --- formatting -------------------------------------------------------------------------------------------

const mb = (bytes) => `${(bytes / 1048576).toFixed(0)} MB`;
const clock = (iso) =>
  new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const when = (iso) => h('time', { datetime: iso, title: new Date(iso).toLocaleString(), text: clock(iso) });
/** `key n` for the numbers of an object; zeros only for the keys in `always`. */
const numbers = (obj, always = Object.keys(obj || {})) =>
  Object.entries(obj || {})
    .filter(([k, v]) => typeof v === 'number' && (v !== 0 || always.includes(k)))
    .map(([k, v]) => `${k} ${v}`)
    .join(' · ') || '—';
const badge = (text, tone) => h('span', { class: `badge ${tone || ''}`, text });
const TONES = {
  ready: 'ok',
  normal: 'ok',
  info: 'ok',
  warning: 'warn',
  attention: 'warn',
  critical: 'bad',
  fault: 'bad',
};

// --- status -----------------------------------------------------------------------------------------------

let statusBusy = false;
async function refreshStatus() {
  if (statusBusy || tokenWait) return;
  statusBusy = true;
  try {
    renderStatus(await getJson('api/status'));
    $('status').classList.remove('stale');
  } catch {
    $('status').classList.add('stale');
  } finally {
    statusBusy = false;
  }
}

function renderStatus(s) {
  const m = s.model || {};
  $('gateway').textContent = [s.gatewayId, s.version && `v${s.version}`].filter(Boolean).join(' ');
  const state = $('model-state');
  state.textContent = m.state || 'unknown';
  state.className = `badge ${TONES[m.state] || 'warn'}`;
  $('model-variant').textContent = m.variant || '';
  $('model-runtime').textContent =
    [m.runtime, m.contextSize && `${m.contextSize} ctx`].filter(Boolean).join(', ') || '—';
  const caps = m.capabilities;
  $('model-caps').textContent = caps ? ['text', 'image', 'audio'].filter((c) => caps[c]).join(', ') : '—';
  const reason = $('model-reason');
  reason.hidden = !m.reason;
  reason.textContent = m.reason || '';
  const g = m.governor || {};
  $('memory').textContent =
    [
      s.memory?.rssBytes && `gateway ${mb(s.memory.rssBytes)} RSS`,
      g.workerRssBytes && `model ${mb(g.workerRssBytes)}`,
      g.budgetBytes && `budget ${mb(g.budgetBytes)}${g.limitedBy ? ` (${g.limitedBy})` : ''}`,
      g.memAvailableBytes && `free ${mb(g.memAvailableBytes)}`,
    ]
      .filter(Boolean)
      .join(' · ') || '—';
  const jobs = s.jobs || {};
  $('jobs').textContent = numbers(jobs, ['queued', 'running', 'done']);
  const outbox = s.queues?.outbox || {};
  $('queues').textContent = `journal ${s.queues?.journalPending ?? '—'} · outbox ${outbox.messages ?? '—'}`;
  const broker = s.broker || {};
  $('broker').textContent = broker.connected
    ? 'connected'
    : `disconnected${broker.lastError ? `: ${broker.lastError}` : ''}`;
  $('frames').textContent = numbers(s.frames);
  $('audio').textContent = [numbers(s.audio), s.audio?.microphone && `mic ${s.audio.microphone.state}`]
    .filter(Boolean)
    .join(' · ');
  $('waiting').replaceChildren(
    ...(jobs.waiting || []).map((w) =>
      h('li', { text: `${w.jobs} ${w.kind} ${w.state}${w.reason ? `: ${w.reason}` : ''}` }),
    ),
  );
  const at = $('status-at');
  at.dateTime = new Date().toISOString();
  at.textContent = clock(at.dateTime);
}

// --- findings ---------------------------------------------------------------------------------------------

const shown = new Map(); // result id -> <li>
const objectUrls = new WeakMap(); // <li> -> blob URLs to revoke when it leaves

// With a token the media routes need the header too: fetch them as blobs, only once they are on screen.
const mediaObserver = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    mediaObserver.unobserve(entry.target);
    loadMedia(entry.target);
  }
});

async function loadMedia(el) {
  try {
    const response = await api(el.dataset.src);
    if (!response.ok)
      throw new Error((await response.json().catch(() => ({}))).message || `HTTP ${response.status}`);
    const url = URL.createObjectURL(await response.blob());
    const item = el.closest('li');
    objectUrls.set(item, [...(objectUrls.get(item) || []), url]);
    el.src = url;
  } catch (error) {
    el.replaceWith(h('p', { class: 'note', text: `Media unavailable: ${error.message}` }));
  }
}

/** Without a token the browser loads media itself; with one, `data-src` is observed once on the page. */
const media = (tag, url, attrs) => h(tag, { ...attrs, [token ? 'data-src' : 'src']: url });

const list = (label, items) =>
  items.length
    ? h(
        'ul',
        { class: 'tags', 'aria-label': label },
        items.map((t) => h('li', { text: t })),
      )
    : null;
const line = (label, value) =>
  value || value === 0 ? h('p', {}, h('strong', { text: `${label}: ` }), String(value)) : null;

const KNOWN = {
  frame: ['description', 'objects', 'people', 'alert', 'alertReason', 'confidence'],
  audio: ['transcript', 'language', 'translation', 'sounds', 'alert', 'alertReason'],
  anomaly: ['summary', 'likelyCause', 'severity', 'action'],
  digest: ['summary', 'status', 'highlights'],
};

function body(r) {
  const o = r.output || {};
  const parts = [];
  const alert = o.alert
    ? h('p', { class: 'alert', role: 'note' }, badge('alert', 'bad'), ` ${o.alertReason || ''}`)
    : null;
  if (r.kind === 'frame') {
    if (r.media)
      parts.push(
        media('img', r.media, {
          alt: o.description || `frame from ${r.source}`,
          class: 'thumb',
          loading: 'lazy',
        }),
      );
    parts.push(alert, h('p', { text: o.description || '' }));
    const objects = (o.objects || []).map((x) => (x.count > 1 ? `${x.label} ×${x.count}` : x.label));
    parts.push(
      list('Objects', objects),
      line('People', o.people),
      line('Confidence', o.confidence === undefined ? '' : `${o.confidence} %`),
    );
  } else if (r.kind === 'audio') {
    parts.push(alert);
    parts.push(
      o.transcript
        ? h('blockquote', { lang: o.language || undefined, text: o.transcript })
        : h('p', { class: 'muted', text: 'No speech.' }),
    );
    parts.push(line('Translation', o.translation), list('Sounds', o.sounds || []));
    if (r.media)
      parts.push(
        media('audio', r.media, { controls: true, preload: 'none', 'aria-label': `clip from ${r.source}` }),
      );
  } else if (r.kind === 'anomaly') {
    parts.push(h('p', {}, o.severity ? badge(o.severity, TONES[o.severity]) : null, ` ${o.summary || ''}`));
    parts.push(line('Likely cause', o.likelyCause), line('Action', o.action));
  } else if (r.kind === 'digest') {
    parts.push(h('p', {}, o.status ? badge(o.status, TONES[o.status]) : null, ` ${o.summary || ''}`));
    parts.push(list('Highlights', o.highlights || []));
  }
  // A route may replace a task's schema: whatever the known fields do not cover is listed as it is.
  const known = KNOWN[r.kind] || [];
  const rest = Object.entries(o).filter(([k]) => !known.includes(k));
  if (rest.length) {
    parts.push(
      h(
        'dl',
        { class: 'rest' },
        rest.map(([k, v]) => [
          h('dt', { text: k }),
          h('dd', { text: typeof v === 'string' ? v : JSON.stringify(v) }),
        ]),
      ),
    );
  }
  return parts;
}

function findingItem(r) {
  const title = `r-${r.id}-title`;
  const meta = [
    r.variant || r.model,
    typeof r.latencyMs === 'number' ? `${(r.latencyMs / 1000).toFixed(1)} s` : null,
  ]
    .filter(Boolean)
    .join(' · ');
  return h(
    'li',
    {
      id: `r-${r.id}`,
      class: `finding kind-${r.kind}`,
      tabindex: -1,
      'data-kind': r.kind,
      'data-source': r.source,
    },
    h(
      'article',
      { 'aria-labelledby': title },
      h(
        'header',
        {},
        h('h3', { id: title }, h('span', { class: 'kind', text: r.kind }), ` ${r.source}`),
        when(r.ts),
      ),
      ...body(r),
      h('p', { class: 'muted small', text: meta }),
    ),
  );
}

/** Adds a result once; `live` ones go on top and are announced. */
function addFinding(r, live) {
  // Answers to questions are shown in the ask box, not among the findings.
  if (!r?.id || r.kind === 'ask' || shown.has(r.id)) return;
  const item = findingItem(r);
  const feed = $('feed');
  const later = live ? feed.firstElementChild : [...feed.children].find((li) => li.dataset.ts < r.ts);
  item.dataset.ts = r.ts;
  feed.insertBefore(item, later || null);
  shown.set(r.id, item);
  for (const el of item.querySelectorAll('[data-src]')) mediaObserver.observe(el);
  $('feed-empty').hidden = true;
  if (live) $('announce').textContent = `New ${r.kind} finding from ${r.source}`;
  while (feed.children.length > MAX_FINDINGS) {
    const old = feed.lastElementChild;
    for (const url of objectUrls.get(old) || []) URL.revokeObjectURL(url);
    shown.delete(old.id.slice(2));
    old.remove();
  }
}

async function loadFindings() {
  try {
    const { results = [] } = await getJson('api/results?limit=50');
    for (const r of results) addFinding(r, false);
  } catch (error) {
    $('feed-empty').textContent = `Findings could not be loaded: ${error.message}`;
  }
}

/** Scrolls to a result, fetching it first when it is not on the page. */
async function showFinding(id) {
  if (!shown.has(id)) {
    try {
      addFinding(await getJson(`api/results/${encodeURIComponent(id)}`), false);
    } catch {
      return;
    }
  }
  const item = shown.get(id);
  item?.scrollIntoView({ block: 'center' });
  item?.focus();
}

// --- sensors ----------------------------------------------------------------------------------------------

const anomalies = []; // anomaly events {ts, detail: {device, metric, value}, message}

async function loadCharts() {
  try {
    const [{ series = [] }, { events = [] }] = await Promise.all([
      getJson('api/readings'),
      getJson('api/events?kind=anomaly&limit=200'),
    ]);
    for (const e of events) rememberAnomaly(e);
    const charts = await Promise.all(
      series
        .slice(0, MAX_SERIES)
        .map(async (s) =>
          chart(s, await getJson(`api/readings?series=${encodeURIComponent(s.series)}&bucket=1m`)),
        ),
    );
    if (charts.length) $('charts').replaceChildren(...charts);
  } catch (error) {
    $('charts').replaceChildren(
      h('p', { class: 'note', text: `Readings could not be loaded: ${error.message}` }),
    );
  }
}

function rememberAnomaly(e) {
  if (e.kind === 'anomaly' && e.detail && !anomalies.some((a) => a.id === e.id)) anomalies.push(e);
}

function chart(s, data) {
  const W = 240;
  const H = 48;
  const pad = 4;
  const from = Date.parse(data.from);
  const to = Date.parse(data.to);
  const points = (data.points || []).map((p) => ({
    ...p,
    x: Date.parse(p.t) + (data.bucketSeconds || 60) * 500,
  }));
  const marks = anomalies.filter(
    (a) => `${a.detail.device}/${a.detail.metric}` === s.series && Date.parse(a.ts) >= from,
  );
  const values = [...points.flatMap((p) => [p.min, p.max]), ...marks.map((a) => a.detail.value)].filter(
    Number.isFinite,
  );
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const x = (t) => pad + ((Math.min(Math.max(t, from), to) - from) / (to - from || 1)) * (W - 2 * pad);
  const y = (v) => (hi === lo ? H / 2 : H - pad - ((v - lo) / (hi - lo)) * (H - 2 * pad));
  const unit = s.unit ? ` ${s.unit}` : '';
  const last = points.at(-1);
  const fmt = (v) => Number(v.toPrecision(4));
  const label = last
    ? `${s.series}, last hour: latest ${fmt(last.mean)}${unit}, range ${fmt(lo)} to ${fmt(hi)}${unit}, ${marks.length} anomal${marks.length === 1 ? 'y' : 'ies'}`
    : `${s.series}: no readings in the last hour`;
  const pic = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, class: 'spark' });
  if (points.length > 1) {
    const band = [
      ...points.map((p) => `${x(p.x)},${y(p.max)}`),
      ...points.toReversed().map((p) => `${x(p.x)},${y(p.min)}`),
    ];
    pic.append(svg('polygon', { class: 'band', points: band.join(' ') }));
    pic.append(
      svg('polyline', { class: 'mean', points: points.map((p) => `${x(p.x)},${y(p.mean)}`).join(' ') }),
    );
  } else if (last) {
    pic.append(svg('circle', { class: 'dot', cx: x(last.x), cy: y(last.mean), r: 2.5 }));
  }
  for (const a of marks) {
    const dot = svg('circle', { class: 'anomaly', cx: x(Date.parse(a.ts)), cy: y(a.detail.value), r: 3.5 });
    const tip = svg('title');
    tip.textContent = a.message;
    dot.append(tip);
    pic.append(dot);
  }
  return h(
    'figure',
    { class: 'chart', 'data-series': s.series },
    pic,
    h(
      'figcaption',
      {},
      h('strong', { text: s.series }),
      last ? ` ${fmt(last.mean)}${unit}` : ' —',
      marks.length ? badge(`${marks.length} ⚠`, 'bad') : null,
    ),
  );
}

let chartsTimer;
const chartsSoon = () => {
  clearTimeout(chartsTimer);
  chartsTimer = setTimeout(loadCharts, 500);
};

// --- live stream (fetch + SSE parsing: EventSource cannot send the Authorization header) -----------------

/** Yields {event, data, id, retry} messages from a text/event-stream body (WHATWG HTML §9.2). */
async function* sse(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let msg = { event: '', data: [], id: undefined, retry: undefined };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    for (let nl = buffer.search(/[\r\n]/); nl >= 0; nl = buffer.search(/[\r\n]/)) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(buffer[nl] === '\r' && buffer[nl + 1] === '\n' ? nl + 2 : nl + 1);
      if (line === '') {
        if (msg.data.length || msg.id !== undefined) yield { ...msg, data: msg.data.join('\n') };
        msg = { event: '', data: [], id: undefined, retry: undefined };
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const val = colon < 0 ? '' : line.slice(colon + (line[colon + 1] === ' ' ? 2 : 1));
      if (field === 'data') msg.data.push(val);
      else if (field === 'event') msg.event = val;
      else if (field === 'id' && !val.includes('\0')) msg.id = val;
      else if (field === 'retry' && /^\d+$/.test(val)) msg.retry = Number(val);
    }
  }
}

function setLive(state, text) {
  const live = $('live');
  live.textContent = text;
  live.className = `pill ${state}`;
}

async function follow() {
  let lastId = '';
  let base = 1000;
  let delay = base;
  let connectedBefore = false;
  for (;;) {
    try {
      const headers = { accept: 'text/event-stream' };
      if (lastId) headers['last-event-id'] = lastId;
      const response = await api('api/stream', { headers, cache: 'no-store' });
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      setLive('ok', 'live');
      // Whatever arrived while we were away (and a stream that cannot resume missed) comes from the list.
      if (connectedBefore) loadFindings();
      connectedBefore = true;
      delay = base;
      for await (const m of sse(response.body)) {
        if (m.id !== undefined) lastId = m.id;
        if (m.retry) base = m.retry;
        if (!m.data) continue;
        const data = JSON.parse(m.data);
        if (m.event === 'result') addFinding(data, true);
        else if (m.event === 'event') {
          rememberAnomaly(data);
          if (data.kind === 'anomaly') chartsSoon();
        }
      }
      throw new Error('stream ended');
    } catch (error) {
      // Backoff with jitter, so that a fleet of open pages does not reconnect in step after a restart.
      const wait = delay / 2 + Math.random() * delay;
      setLive('warn', `reconnecting in ${Math.round(wait / 1000)} s (${error.message})`);
      await new Promise((resolve) => setTimeout(resolve, wait));
      delay = Math.min(delay * 2, 30_000);
    }
  }
}

// --- ask --------------------------------------------------------------------------------------------------

async function ask(event) {
  event.preventDefault();
  const question = $('question').value.trim();
  if (!question) return;
  const button = $('ask-button');
  const out = $('answer');
  button.disabled = true;
  out.setAttribute('aria-busy', 'true');
  out.replaceChildren(h('p', { class: 'muted', text: 'Thinking… a small board may take a while.' }));
  try {
    const response = await api('api/ask', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ question }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const why =
        response.status === 503
          ? 'No model can answer right now'
          : `The gateway could not answer (HTTP ${response.status})`;
      throw new Error(body.message ? `${why}: ${body.message}` : `${why}.`);
    }
    const used = (body.results || []).map((id) =>
      h(
        'li',
        {},
        h('a', {
          href: `#r-${id}`,
          onclick: (e) => {
            e.preventDefault();
            showFinding(id);
          },
          text: id,
        }),
      ),
    );
    out.replaceChildren(
      h('p', { class: 'answer', text: body.answer || '(no answer)' }),
      ...(used.length
        ? [
            h('p', { class: 'muted small', text: 'Based on these findings:' }),
            h('ul', { class: 'used' }, used),
          ]
        : [h('p', { class: 'muted small', text: 'No stored finding was used.' })]),
    );
  } catch (error) {
    out.replaceChildren(h('p', { class: 'note', role: 'alert', text: error.message }));
  } finally {
    button.disabled = false;
    out.removeAttribute('aria-busy');
  }
}

// --- start ------------------------------------------------------------------------------------------------

$('ask-form').addEventListener('submit', ask);
// Nothing works without the token: the form stays until one is given.
$('auth').addEventListener('cancel', (event) => event.preventDefault());
$('forget').hidden = !token;
$('forget').addEventListener('click', () => {
  localStorage.removeItem(TOKEN_KEY);
  location.reload();
});

await refreshStatus();
setInterval(refreshStatus, STATUS_EVERY_MS);
loadFindings();
loadCharts();
setInterval(loadCharts, CHARTS_EVERY_MS);
follow();
