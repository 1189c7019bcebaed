// The dashboard page: one EventSource for everything the server knows (state, log, action,
// problem events), drawn with the DOM only (text is never parsed as HTML), and the actions
// posted back with the token in a header.
'use strict';

const token = new URLSearchParams(location.search).get('token') || '';
const $ = (id) => document.getElementById(id);
const MAX_LINES = 2000;

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** The same colour for a service everywhere: FNV-1a of its name, one of eight classes. */
function colour(name) {
  let h = 0x811c9dc5;
  for (const ch of new TextEncoder().encode(name)) { h ^= ch; h = Math.imul(h, 0x01000193) >>> 0; }
  return 'c' + (h % 8);
}

function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + ' ' + units[i];
}

function spark(values) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('viewBox', '0 0 60 18');
  svg.setAttribute('aria-hidden', 'true');
  if (values && values.length > 1) {
    const max = Math.max(...values, 1e-9);
    const step = 60 / (values.length - 1);
    const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(17 - (v / max) * 16).toFixed(1)}`);
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', pts.join(' '));
    svg.append(line);
  }
  return svg;
}

// ---- services ----

const running = new Set(); // services with an action under way
const rows = new Map();

function act(service, action, button) {
  button.disabled = true;
  fetch(`/api/services/${encodeURIComponent(service)}/${action}`, {
    method: 'POST',
    headers: { 'X-Devenv-Token': token },
  }).then(async (r) => {
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      showProblem(body.error || `the action failed to start (${r.status})`);
      button.disabled = false;
    }
  }).catch((e) => { showProblem(String(e)); button.disabled = false; });
}

function row(s) {
  let r = rows.get(s.name);
  if (!r) {
    const cells = {};
    for (const k of ['name', 'where', 'pods', 'restarts', 'cpu', 'memory', 'urls', 'actions']) cells[k] = el('td', { class: k });
    cells.name.append(el('span', { class: colour(s.name) }, s.name));
    const tr = el('tr', { 'data-service': s.name }, Object.values(cells));
    const restart = el('button', { type: 'button', 'data-action': 'restart', title: `devenv restart ${s.name}` }, 'Restart');
    restart.addEventListener('click', () => act(s.name, 'restart', restart));
    const move = el('button', { type: 'button' });
    move.addEventListener('click', () => act(s.name, move.dataset.action, move));
    const shell = el('button', { type: 'button', 'data-action': 'shell', title: 'copy the command' }, 'Copy shell');
    shell.addEventListener('click', () => {
      const cmd = `devenv shell ${s.name}`;
      (navigator.clipboard ? navigator.clipboard.writeText(cmd) : Promise.reject())
        .then(() => { shell.textContent = 'Copied'; setTimeout(() => { shell.textContent = 'Copy shell'; }, 1500); })
        .catch(() => { shell.textContent = cmd; });
    });
    cells.actions.append(restart, move, shell);
    r = { tr, cells, restart, move };
    rows.set(s.name, r);
    $('services').tBodies[0].append(tr);
    $('log-service').append(el('option', { value: s.name }, s.name));
  }
  const c = r.cells;
  c.where.replaceChildren(el('span', { class: 'where-' + s.where }, s.where === 'remote' ? 'remote' : 'laptop'));
  if (s.where === 'remote') c.where.append(el('div', { class: 'muted' }, s.context));
  const ready = s.pods.filter((p) => p.ready).length;
  c.pods.replaceChildren(s.problem
    ? el('span', { class: 'warn', title: s.problem }, 'none')
    : el('span', { class: ready === s.pods.length && ready > 0 ? 'ok' : 'warn', title: s.pods.map((p) => `${p.name}${p.ready ? '' : ' (not ready)'}`).join('\n') }, `${ready}/${s.pods.length} ready`));
  c.restarts.textContent = s.pods.reduce((n, p) => n + p.restarts, 0);
  c.cpu.replaceChildren(s.cpu_percent === null ? '–' : `${s.cpu_percent.toFixed(0)} %`, spark(s.cpu_history));
  c.memory.replaceChildren(bytes(s.memory_bytes), spark(s.memory_history));
  c.urls.replaceChildren(...s.urls.map((u) => el('div', {}, el('a', { href: u.url, target: '_blank', rel: 'noopener noreferrer' }, u.url))));
  if (!s.urls.length && s.forward) c.urls.append(el('code', {}, s.forward));
  const busy = running.has(s.name);
  r.restart.disabled = busy;
  if (s.offloadable) {
    r.move.hidden = false;
    r.move.dataset.action = s.where === 'remote' ? 'local' : 'remote';
    r.move.textContent = s.where === 'remote' ? 'Bring back' : 'Offload';
    r.move.title = `devenv offload ${s.name} --${r.move.dataset.action}`;
    r.move.disabled = busy;
  } else {
    r.move.hidden = true;
  }
}

// ---- the rest of the picture ----

function render(state) {
  $('project').textContent = state.project;
  document.title = `devenv · ${state.project}`;
  for (const s of state.services) row(s);
  const vm = state.vm;
  $('vm-chip').textContent = `VM ${vm.state}`;
  $('vm-chip').className = 'chip ' + (vm.state === 'running' ? 'live' : 'down');
  const dl = $('vm');
  const u = vm.usage;
  const m = vm.mount || {};
  const entries = [
    ['Profile', vm.profile], ['State', vm.state], ['Driver', vm.driver || '–'], ['Address', vm.address || '–'],
    ['CPUs', vm.cpus ?? '–'],
    ['CPU', u ? `${u.cpu_percent.toFixed(0)} % (of ${u.cpus * 100} %)` : '–'],
    ['Memory', u ? `${bytes(u.memory_used_bytes)} of ${bytes(u.memory_total_bytes)} (${u.memory_percent.toFixed(0)} %)` : (vm.memory_mib ? `${vm.memory_mib} MiB` : '–')],
    ['Hypervisor', vm.hypervisor ? `${vm.hypervisor.cpu_percent.toFixed(0)} % CPU, ${bytes(vm.hypervisor.memory_bytes)}` : '–'],
    ['Mount', `${vm.target}: ${m.state}${m.why ? ` (${m.why})` : ''}`],
    ['stat', m.stat_us !== undefined ? `${m.stat_us.toFixed(0)} µs per file` : '–'],
  ];
  dl.replaceChildren(...entries.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v))]));
  $('errors').textContent = (state.errors || []).join('; ');
  $('alerts').replaceChildren(...(state.alerts.length
    ? state.alerts.map((a) => el('li', { class: 'warn' }, a.message))
    : [el('li', { class: 'muted' }, 'none')]));
  const icon = { done: '✓', failed: '✗', running: '…', skipped: '↷', cancelled: '■', waiting: '·' };
  const stages = state.run.stages;
  $('stages-h').replaceChildren(state.run.live ? 'This ' : 'Last ', el('code', {}, 'devenv up'));
  $('stages').replaceChildren(...(stages.length ? stages.map((s) => {
    const cls = s.state === 'done' ? 'ok' : s.state === 'failed' ? 'bad' : s.state === 'running' ? 'warn' : 'muted';
    const time = s.elapsed_ms !== undefined ? ` ${(s.elapsed_ms / 1000).toFixed(1)} s` : '';
    const what = s.error || s.summary || s.because || '';
    const li = el('li', { 'data-stage': s.stage }, el('span', { class: cls }, `${icon[s.state] || ''} ${s.stage}`), el('span', { class: 'muted' }, time), what ? ` ${what}` : '');
    if (s.lines.length || s.help) {
      li.append(el('details', {}, el('summary', {}, 'output'), el('pre', {}, [...s.lines, ...(s.help ? ['help: ' + s.help] : [])].join('\n'))));
    }
    return li;
  }) : [el('li', { class: 'muted' }, 'no run yet: devenv up')]));
}

// ---- actions ----

const actions = new Map();

function showAction(a) {
  if (a.state === 'running') running.add(a.service); else running.delete(a.service);
  let li = actions.get(a.id);
  if (!li) {
    li = el('li', { 'data-action-id': a.id });
    actions.set(a.id, li);
    const list = $('actions');
    if (list.firstElementChild && list.firstElementChild.classList.contains('muted')) list.replaceChildren();
    list.prepend(li);
  }
  const cls = a.state === 'ok' ? 'ok' : a.state === 'failed' ? 'bad' : 'warn';
  const time = a.elapsed_ms !== undefined ? ` in ${(a.elapsed_ms / 1000).toFixed(1)} s` : '';
  li.dataset.state = a.state;
  li.replaceChildren(el('code', {}, a.command), ' ', el('span', { class: cls }, a.state === 'running' ? 'running…' : `${a.state}${time}`));
  if (a.output) li.append(el('details', { open: a.state === 'failed' }, el('summary', {}, 'output'), el('pre', {}, a.output)));
  const r = rows.get(a.service);
  if (r) { r.restart.disabled = running.has(a.service); r.move.disabled = running.has(a.service); }
}

function showProblem(p) {
  $('problems').append(el('li', {}, p));
}

// ---- logs ----

const lines = [];
let pending = [];

function matcher() {
  const f = $('filter').value;
  const svc = $('log-service').value;
  let test = () => true;
  if (f.length > 1 && f.startsWith('/') && f.endsWith('/')) {
    try { const re = new RegExp(f.slice(1, -1), 'i'); test = (t) => re.test(t); } catch { /* an unfinished pattern matches all */ }
  } else if (f) {
    const low = f.toLowerCase();
    test = (t) => t.toLowerCase().includes(low);
  }
  return (l) => (!svc || l.service === svc) && test(l.line);
}

function lineEl(l) {
  const time = (l.time || '').slice(11, 19);
  return el('div', { class: 'line' }, el('span', { class: 'time' }, time), el('span', { class: 'svc ' + colour(l.service) }, l.service), el('span', { class: 'text' }, l.line));
}

function appendLines(batch) {
  const box = $('logs');
  const keep = matcher();
  for (const l of batch) {
    lines.push(l);
    if (keep(l)) box.append(lineEl(l));
  }
  while (lines.length > MAX_LINES) lines.shift();
  while (box.childElementCount > MAX_LINES) box.firstElementChild.remove();
  if ($('follow').checked) box.scrollTop = box.scrollHeight;
}

function redraw() {
  const keep = matcher();
  $('logs').replaceChildren(...lines.filter(keep).map(lineEl));
  if ($('follow').checked) $('logs').scrollTop = $('logs').scrollHeight;
}

function addLine(l) {
  if ($('pause').checked) {
    pending.push(l);
    $('paused-count').textContent = `${pending.length} new`;
  } else {
    appendLines([l]);
  }
}

function setPaused(on) {
  $('pause').checked = on;
  if (!on) {
    const batch = pending;
    pending = [];
    $('paused-count').textContent = '';
    appendLines(batch);
  }
}

// ---- wiring ----

function connect() {
  const es = new EventSource('/events?token=' + encodeURIComponent(token));
  const conn = (text, cls) => { $('conn').textContent = text; $('conn').className = 'chip ' + cls; };
  es.addEventListener('open', () => conn('live', 'live'));
  es.addEventListener('error', () => conn('reconnecting…', 'down'));
  es.addEventListener('state', (e) => render(JSON.parse(e.data)));
  es.addEventListener('log', (e) => addLine(JSON.parse(e.data)));
  es.addEventListener('action', (e) => showAction(JSON.parse(e.data)));
  es.addEventListener('problem', (e) => showProblem(JSON.parse(e.data).problem));
}

document.addEventListener('DOMContentLoaded', () => {
  $('filter').addEventListener('input', redraw);
  $('log-service').addEventListener('change', redraw);
  $('pause').addEventListener('change', () => setPaused($('pause').checked));
  $('clear').addEventListener('click', () => { lines.length = 0; pending = []; redraw(); });
  document.addEventListener('keydown', (e) => {
    const typing = ['INPUT', 'SELECT', 'TEXTAREA'].includes(document.activeElement.tagName);
    if (e.key === '/' && !typing) { e.preventDefault(); $('filter').focus(); }
    if (e.key === 'p' && !typing && !e.ctrlKey && !e.metaKey) setPaused(!$('pause').checked);
    if (e.key === 'Escape' && typing) document.activeElement.blur();
  });
  connect();
});
