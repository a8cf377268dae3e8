// The virtus web console: lists and actions over the /api/ of `virtus serve` (docs/serve.md).
// Plain DOM, no framework. Server data only ever goes into the page as textContent or attributes.
'use strict';
(function () {
  const REFRESH_MS = 2000;
  const OVERVIEW_TIMEOUT_MS = 10000;
  const TOKEN_KEY = 'virtus-token';
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;

  // ---- DOM helpers ----

  // el('td', {class: 'x', 'data-id': id}, child...): children are nodes or strings (text).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') node.className = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }

  // Only touch the DOM when the text changes, so a selection inside the cell survives a refresh.
  function setText(node, text) {
    text = String(text);
    if (node.textContent !== text) node.textContent = text;
  }

  function setAttr(node, name, value) {
    if (value == null || value === '') node.removeAttribute(name);
    else if (node.getAttribute(name) !== value) node.setAttribute(name, value);
  }

  // ---- formatting ----

  const DASH = '—';

  function fmtMib(mib) {
    if (mib == null || isNaN(mib)) return DASH;
    if (mib >= 1024) return (mib / 1024).toFixed(mib >= 10240 ? 0 : 1) + ' GiB';
    return Math.round(mib) + ' MiB';
  }

  function fmtBytes(b) {
    if (typeof b !== 'number') return b == null ? DASH : String(b);
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
    return (i === 0 ? b : b.toFixed(b >= 100 ? 0 : 1)) + ' ' + units[i];
  }

  function fmtPercent(p) {
    return typeof p === 'number' ? p.toFixed(1) + '%' : DASH;
  }

  function fmtDuration(s) {
    if (s == null || isNaN(s) || s < 0) return DASH;
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${String(m).padStart(2, '0')}m`;
    if (m) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
    return `${s}s`;
  }

  // A time from the API as epoch seconds: a number is taken as such, a string is parsed as a date.
  function toEpoch(v) {
    if (typeof v === 'number') return v;
    if (typeof v === 'string' && v) {
      const ms = Date.parse(v);
      return isNaN(ms) ? null : ms / 1000;
    }
    return null;
  }

  function fmtWhen(v) {
    const t = toEpoch(v);
    if (t == null) return v ? String(v) : DASH;
    const d = new Date(t * 1000), p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
  }

  const basename = (p) => String(p).replace(/\/+$/, '').split('/').pop();
  const shortId = (id) => String(id || '').replace(/^sha256:/, '').slice(0, 12);
  const splitList = (s, re) => s.split(re).map((x) => x.trim()).filter(Boolean);

  // ---- banners ----

  let errorSource = null; // 'refresh' or 'action': a good refresh only clears its own error
  let noticeTimer = null;

  function showError(msg, source) {
    errorSource = source;
    setText($('error'), msg);
    $('error').hidden = false;
  }

  function clearError(source) {
    if (source && errorSource !== source) return;
    $('error').hidden = true;
    errorSource = null;
  }

  function showNotice(msg) {
    setText($('notice'), msg);
    $('notice').hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { $('notice').hidden = true; }, 8000);
  }

  // ---- token and login ----

  let token = null;

  // The token comes in the URL fragment (#token=HEX) once; it is then kept in sessionStorage only.
  function loadToken() {
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
      history.replaceState(null, '', location.pathname + location.search);
    }
    token = sessionStorage.getItem(TOKEN_KEY) || null;
  }

  function showLogin(msg) {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    closeTerminal();
    closeCdPicker();
    $('main').hidden = true;
    $('logout').hidden = true;
    $('login-form').hidden = false;
    setText($('login-msg'), msg || '');
    $('login-msg').hidden = !msg;
    $('token-input').value = '';
    $('token-input').focus();
  }

  function onLogin(ev) {
    ev.preventDefault();
    // Accept the bare token or the whole URL that `virtus serve` printed.
    const v = $('token-input').value.trim().replace(/^.*#token=/, '');
    if (!v) return;
    sessionStorage.setItem(TOKEN_KEY, v);
    token = v;
    $('login-form').hidden = true;
    $('main').hidden = false;
    $('logout').hidden = false;
    refresh();
  }

  // ---- API ----

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  // One request under /api/. Returns the parsed JSON answer; throws ApiError with the server's
  // {"error": ...} text. 401 brings the login form back, 429 says to wait.
  async function api(method, path, body, timeoutMs) {
    const opts = { method, headers: { Authorization: 'Bearer ' + token } };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    let timer = null;
    if (timeoutMs) {
      const ctl = new AbortController();
      opts.signal = ctl.signal;
      timer = setTimeout(() => ctl.abort(), timeoutMs);
    }
    let res, data = null;
    try {
      res = await fetch(path, opts);
      const text = await res.text();
      try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    } catch (e) {
      throw new ApiError(0, e.name === 'AbortError' ? 'the server did not answer' : 'cannot reach the server');
    } finally {
      clearTimeout(timer);
    }
    if (res.ok) return data;
    const msg = (data && typeof data.error === 'string') ? data.error : `HTTP ${res.status} ${res.statusText}`.trim();
    if (res.status === 401) {
      showLogin('The server refused the token: ' + msg);
    } else if (res.status === 429) {
      const wait = 'too many wrong tokens, wait a minute';
      if (!$('login-form').hidden) { setText($('login-msg'), wait); $('login-msg').hidden = false; }
      throw new ApiError(429, wait);
    }
    throw new ApiError(res.status, msg);
  }

  const wsUrl = (path) =>
    (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path + '?token=' + enc(token);

  // ---- refresh ----

  let inFlight = false;

  // GET /api/overview and update everything. A tick is skipped while the previous one runs.
  async function refresh() {
    if (inFlight || !token) return;
    inFlight = true;
    try {
      const ov = await api('GET', '/api/overview', undefined, OVERVIEW_TIMEOUT_MS);
      if (!token) return;
      render(ov || {});
      clearError('refresh');
      const d = new Date();
      setText($('updated'), 'updated ' + d.toLocaleTimeString());
    } catch (e) {
      if (token) showError('Refresh failed: ' + e.message, 'refresh');
    } finally {
      inFlight = false;
    }
  }

  function render(ov) {
    const host = ov.host || {};
    const now = typeof host.time === 'number' ? host.time : Date.now() / 1000;
    const vms = Array.isArray(ov.vms) ? ov.vms : [];
    const cts = Array.isArray(ov.containers) ? ov.containers : [];
    const imgs = Array.isArray(ov.images) ? ov.images : [];
    renderHost(host, vms, cts);
    syncTable('vms', vmRows, vms, (v) => v.name, buildVmRow, (r, v) => updateVmRow(r, v, now));
    syncTable('containers', ctRows, cts, (c) => c.id, buildCtRow, (r, c) => updateCtRow(r, c, now));
    syncTable('images', imgRows, imgs, (i) => i.id, buildImgRow, updateImgRow);
    if (cdPicker && !vmRows.has(cdPicker.name)) closeCdPicker();
    // when the first list was drawn, for bench/serve-page
    if (window.virtusFirstListMs === undefined) window.virtusFirstListMs = performance.now();
  }

  function renderHost(h, vms, cts) {
    setText($('host-name'), h.hostname || '');
    setText($('host-hostname'), h.hostname || DASH);
    setText($('host-cpus'), h.cpus != null ? h.cpus : DASH);
    const total = h.mem_total_mib, avail = h.mem_available_mib;
    if (typeof total === 'number' && total > 0 && typeof avail === 'number') {
      setText($('host-mem'), `${fmtMib(total - avail)} used of ${fmtMib(total)}`);
      $('host-mem-bar').style.width = Math.min(100, Math.max(0, 100 * (total - avail) / total)).toFixed(1) + '%';
    } else {
      setText($('host-mem'), fmtMib(total));
    }
    const running = (list, f) => list.filter((x) => /^running$/i.test(x[f] || '')).length;
    setText($('host-vms'), `${running(vms, 'state')} running of ${vms.length}`);
    setText($('host-containers'), `${running(cts, 'status')} running of ${cts.length}`);
  }

  // ---- keyed tables: rows are made once per key and updated in place ----

  const vmRows = new Map(), ctRows = new Map(), imgRows = new Map();

  function sortKey(x) { return String(x.name || (x.names && x.names[0]) || x.id || ''); }

  function syncTable(tableId, rows, items, keyOf, build, update) {
    const table = $(tableId), tbody = table.tBodies[0];
    items = items.filter((x) => x && keyOf(x) != null)
      .sort((a, b) => sortKey(a).localeCompare(sortKey(b)));
    const seen = new Set();
    let prev = null;
    for (const item of items) {
      const key = String(keyOf(item));
      if (seen.has(key)) continue;
      seen.add(key);
      let row = rows.get(key);
      if (!row) { row = build(key); rows.set(key, row); }
      row.data = item;
      update(row, item);
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (row.tr !== want) tbody.insertBefore(row.tr, want); // move only when out of place
      prev = row.tr;
    }
    for (const [key, row] of rows) {
      if (!seen.has(key)) { row.tr.remove(); rows.delete(key); }
    }
    table.parentNode.querySelector('.empty').hidden = rows.size > 0;
  }

  // A row: one <td class=COL> per column, then the buttons. actions: [[class, label, handler(row, btn)]].
  function buildRow(keyAttr, key, cols, actions) {
    const row = { key, data: null, cells: {}, btns: {} };
    row.tr = el('tr', { [keyAttr]: key });
    for (const c of cols) {
      row.cells[c] = el('td', { class: c });
      row.tr.append(row.cells[c]);
    }
    if (actions) {
      const td = el('td', { class: 'actions' });
      for (const [cls, label, handler] of actions) {
        const b = el('button', { type: 'button', class: 'btn ' + cls }, label);
        b.addEventListener('click', () => handler(row, b));
        row.btns[cls] = b;
        td.append(b);
      }
      row.tr.append(td);
    }
    return row;
  }

  // The state cell holds one coloured badge.
  function setBadge(td, state) {
    let b = td.firstElementChild;
    if (!b) { b = el('span'); td.append(b); }
    state = state || 'unknown';
    setText(b, state);
    const cls = 'badge s-' + String(state).toLowerCase().replace(/[^a-z]/g, '');
    if (b.className !== cls) b.className = cls;
  }

  // ---- VMs ----

  const VM_COLS = ['name', 'state', 'vcpus', 'memory', 'uptime', 'cpu', 'rss', 'cd'];

  function buildVmRow(name) {
    return buildRow('data-name', name, VM_COLS, [
      ['btn-console', 'Console', (r) => openTerminal(`VM ${r.key}: console`, `/api/vms/${enc(r.key)}/console`)],
      ['btn-pause', 'Pause', vmPauseResume],
      ['btn-stop', 'Stop', (r, b) => act(b, `stop ${r.key}`, 'POST', `/api/vms/${enc(r.key)}/stop`)],
      ['btn-kill', 'Kill', (r, b) => act(b, `kill ${r.key}`, 'POST', `/api/vms/${enc(r.key)}/kill`)],
      ['btn-snapshot', 'Snapshot', vmSnapshot],
      ['btn-cd', 'CD', (r, b) => openCdPicker(r, b)],
      ['btn-balloon', 'Balloon', vmBalloon],
      ['btn-disk', 'Disk', vmDisk],
      ['btn-migrate', 'Migrate', vmMigrate],
    ]);
  }

  function updateVmRow(r, vm, now) {
    const c = r.cells;
    setText(c.name, vm.name);
    setAttr(c.name, 'title', vm.container ? `VM of container ${shortId(vm.container)}` : null);
    setBadge(c.state, vm.state);
    setText(c.vcpus, vm.vcpus != null ? vm.vcpus : DASH);
    setText(c.memory, fmtMib(vm.memory_mib));
    const started = toEpoch(vm.started);
    setText(c.uptime, started ? fmtDuration(now - started) : DASH);
    setText(c.cpu, fmtPercent(vm.cpu_percent));
    setText(c.rss, fmtMib(vm.rss_mib));
    const cd = vm.cdrom;
    setText(c.cd, !cd ? DASH : cd.disc ? basename(cd.disc) : 'empty');
    setAttr(c.cd, 'title', cd ? (cd.disc || 'no disc') + (cd.locked ? ' (tray locked by the guest)' : '') : null);
    c.cd.classList.toggle('locked', !!(cd && cd.locked));
    setText(r.btns['btn-pause'], isPaused(vm) ? 'Resume' : 'Pause');
  }

  const isPaused = (vm) => /^paused$/i.test(vm.state || '');

  function vmPauseResume(r, b) {
    const verb = isPaused(r.data) ? 'resume' : 'pause';
    act(b, `${verb} ${r.key}`, 'POST', `/api/vms/${enc(r.key)}/${verb}`);
  }

  function vmSnapshot(r, b) {
    const dir = prompt(`Snapshot VM ${r.key} into which directory (on the host)?`, '');
    if (dir == null || !dir.trim()) return;
    act(b, `snapshot ${r.key}`, 'POST', `/api/vms/${enc(r.key)}/snapshot`, { dir: dir.trim() });
  }

  function vmBalloon(r, b) {
    const v = prompt(`Balloon size for VM ${r.key} in MiB (memory taken from the guest):`, '0');
    if (v == null || !v.trim()) return;
    const n = Number(v.trim());
    if (!Number.isInteger(n) || n < 0) { showError(`balloon ${r.key}: not a size in MiB: ${v}`, 'action'); return; }
    act(b, `balloon ${r.key}`, 'POST', `/api/vms/${enc(r.key)}/balloon`, { size_mib: n });
  }

  // Plug a disk in ("ID /path/to/image [ro]") or take one out ("-ID").
  function vmDisk(r, b) {
    const v = prompt(`Disk for VM ${r.key}: "ID /path/to/image" (add "ro" for read-only) to plug one in, "-ID" to take one out:`, '');
    if (v == null || !v.trim()) return;
    const words = v.trim().split(/\s+/);
    if (words.length === 1 && words[0].startsWith('-') && words[0].length > 1) {
      const id = words[0].slice(1);
      act(b, `remove disk ${id} from ${r.key}`, 'DELETE', `/api/vms/${enc(r.key)}/disks/${enc(id)}`);
    } else if ((words.length === 2 || (words.length === 3 && words[2] === 'ro'))) {
      act(b, `add disk ${words[0]} to ${r.key}`, 'POST', `/api/vms/${enc(r.key)}/disks`,
        { id: words[0], path: words[1], read_only: words.length === 3 });
    } else {
      showError(`disk ${r.key}: want "ID /path [ro]" or "-ID", got: ${v}`, 'action');
    }
  }

  // Live migration to another host's virtus serve: its URL as it printed it (with #token=...).
  function vmMigrate(r, b) {
    const to = prompt(`Migrate VM ${r.key} to which virtus serve? Paste the URL it printed (http(s)://HOST:PORT/#token=...):`, '');
    if (to == null || !to.trim()) return;
    act(b, `migrate ${r.key}`, 'POST', `/api/vms/${enc(r.key)}/migrate`, { to: to.trim() }, 660000);
  }

  // The "Restore" form: a VM continued from a snapshot's directory (POST /api/vms).
  async function onRestore(ev) {
    ev.preventDefault();
    const f = ev.target, btn = f.querySelector('button[type=submit]');
    const name = f.elements.name.value.trim(), dir = f.elements.dir.value.trim();
    if (!name || !dir) { showError('restore: a name and a snapshot directory are needed', 'action'); return; }
    if (await act(btn, `restore ${name}`, 'POST', '/api/vms', { name, restore: dir })) f.reset();
  }

  // ---- the CD picker: a popover listing GET /api/isos, plus Eject ----

  let cdPicker = null; // {name, btn}

  async function openCdPicker(r, btn) {
    const again = cdPicker && cdPicker.btn === btn;
    closeCdPicker();
    if (again) return; // the button toggles the picker
    cdPicker = { name: r.key, btn };
    const pop = $('cd-picker'), list = $('cd-list');
    setText($('cd-title'), `CD drive of ${r.key}`);
    $('cd-force').checked = false;
    list.replaceChildren(el('div', { class: 'pop-note' }, 'Loading…'));
    pop.hidden = false;
    placePopover(pop, btn);
    const mine = cdPicker;
    let isos;
    try {
      isos = await api('GET', '/api/isos');
    } catch (e) {
      if (cdPicker === mine) list.replaceChildren(el('div', { class: 'pop-note err' }, e.message));
      return;
    }
    if (cdPicker !== mine) return;
    const names = (isos && Array.isArray(isos.isos)) ? isos.isos : [];
    const cur = r.data && r.data.cdrom && r.data.cdrom.disc ? basename(r.data.cdrom.disc) : null;
    list.replaceChildren();
    for (const iso of names) {
      const b = el('button', { type: 'button', class: 'cd-iso' + (iso === cur ? ' current' : ''), 'data-iso': iso }, iso);
      b.addEventListener('click', () => cdChoose(iso));
      list.append(b);
    }
    if (!names.length) {
      list.append(el('div', { class: 'pop-note' }, `No .iso files in ${(isos && isos.dir) || 'the ISO directory'}.`));
    }
    placePopover(pop, btn);
  }

  function cdChoose(iso) {
    const p = cdPicker, force = $('cd-force').checked;
    closeCdPicker();
    if (!p) return;
    if (iso == null) {
      act(p.btn, `eject ${p.name}`, 'DELETE', `/api/vms/${enc(p.name)}/cdrom`, { force });
    } else {
      act(p.btn, `insert ${iso} in ${p.name}`, 'POST', `/api/vms/${enc(p.name)}/cdrom`, { iso, force });
    }
  }

  function closeCdPicker() {
    cdPicker = null;
    $('cd-picker').hidden = true;
  }

  // Put the popover under its button, kept inside the window.
  function placePopover(pop, btn) {
    const b = btn.getBoundingClientRect();
    const w = pop.offsetWidth;
    const left = Math.max(8, Math.min(b.right - w, document.documentElement.clientWidth - w - 8));
    pop.style.left = (left + window.scrollX) + 'px';
    pop.style.top = (b.bottom + 4 + window.scrollY) + 'px';
  }

  // ---- containers ----

  const CT_COLS = ['name', 'id', 'image', 'state', 'isolation', 'ports', 'uptime', 'cpu', 'memory'];

  function buildCtRow(id) {
    const path = (r, rest) => `/api/containers/${enc(r.key)}${rest}`;
    const label = (r) => (r.data && r.data.name) || shortId(r.key);
    return buildRow('data-id', id, CT_COLS, [
      ['btn-shell', 'Shell', (r) => openTerminal(`Container ${label(r)}: shell`, path(r, '/shell'))],
      ['btn-logs', 'Logs', (r) => openTerminal(`Container ${label(r)}: logs`, path(r, '/logs'), { readOnly: true })],
      ['btn-stop', 'Stop', (r, b) => act(b, `stop ${label(r)}`, 'POST', path(r, '/stop'))],
      ['btn-start', 'Start', (r, b) => act(b, `start ${label(r)}`, 'POST', path(r, '/start'))],
      ['btn-pause', 'Pause', (r, b) => {
        const verb = r.data && r.data.status === 'paused' ? 'unpause' : 'pause';
        act(b, `${verb} ${label(r)}`, 'POST', path(r, '/' + verb));
      }],
      ['btn-rm', 'Remove', (r, b) => {
        if (confirm(`Remove container ${label(r)}? It is stopped first if it runs.`)) {
          act(b, `remove ${label(r)}`, 'DELETE', path(r, ''));
        }
      }],
      ['btn-commit', 'Commit', (r, b) => {
        const image = prompt(`Commit container ${label(r)} as image (name[:tag]):`, '');
        if (image && image.trim()) act(b, `commit ${label(r)}`, 'POST', path(r, '/commit'), { image: image.trim() });
      }],
    ]);
  }

  function updateCtRow(r, ct, now) {
    const c = r.cells;
    setText(c.name, ct.name || DASH);
    setText(c.id, shortId(ct.id));
    setAttr(c.id, 'title', ct.id);
    setText(c.image, ct.image || DASH);
    setAttr(c.image, 'title', Array.isArray(ct.command) ? ct.command.join(' ') : null);
    setBadge(c.state, ct.status);
    setAttr(c.state, 'title', ct.status === 'exited' && ct.exit_code != null ? `exit code ${ct.exit_code}` : null);
    setText(c.isolation, ct.isolation || DASH);
    setText(c.ports, Array.isArray(ct.ports) && ct.ports.length ? ct.ports.join(', ') : DASH);
    const started = ct.status === 'running' || ct.status === 'paused' ? toEpoch(ct.started) : null;
    setText(c.uptime, started ? fmtDuration(Math.max(0, Math.floor(now - started))) : DASH);
    setText(c.cpu, fmtPercent(ct.cpu_percent));
    setText(c.memory, fmtMib(ct.memory_mib));
    setText(r.btns['btn-pause'], ct.status === 'paused' ? 'Unpause' : 'Pause');
  }

  // The "Run container" form: POST /api/containers.
  async function onRun(ev) {
    ev.preventDefault();
    const f = ev.target, btn = f.querySelector('button[type=submit]');
    const v = (n) => f.elements[n].value.trim();
    const body = { image: v('image'), isolation: v('isolation') };
    if (!body.image) return;
    const name = v('name');
    const command = splitList(v('command'), /\s+/);
    const ports = splitList(v('ports'), /,/);
    const volumes = splitList(v('volumes'), /,/);
    if (name) body.name = name;
    if (command.length) body.command = command;
    if (ports.length) body.ports = ports;
    if (volumes.length) body.volumes = volumes;
    if (await act(btn, `run ${body.image}`, 'POST', '/api/containers', body)) {
      f.elements.name.value = '';
      f.elements.command.value = '';
    }
  }

  // ---- images ----

  function buildImgRow(id) {
    return buildRow('data-id', id, ['names', 'id', 'size', 'created']);
  }

  function updateImgRow(r, img) {
    const c = r.cells;
    setText(c.names, Array.isArray(img.names) && img.names.length ? img.names.join(', ') : '<none>');
    setText(c.id, shortId(img.id));
    setAttr(c.id, 'title', img.id);
    setText(c.size, fmtBytes(img.size));
    setText(c.created, fmtWhen(img.created));
  }

  // ---- actions ----

  // Run one action request with its button disabled; the result goes to a banner.
  // Returns true when the server did it.
  async function act(btn, what, method, path, body, timeoutMs) {
    btn.disabled = true;
    try {
      const res = await api(method, path, body, timeoutMs);
      const out = res && typeof res.output === 'string' ? res.output.trim() : '';
      clearError('action');
      showNotice(out ? `${what}: ${out}` : `${what}: done`);
      return true;
    } catch (e) {
      if (token) showError(`${what}: ${e.message}`, 'action');
      return false;
    } finally {
      btn.disabled = false;
      refresh();
    }
  }

  // ---- the terminal panel: one xterm.js terminal over one WebSocket ----

  let session = null; // {term, ws, observer}
  const textEncoder = new TextEncoder();

  // xterm.js and its fit add-on, loaded once, when the first terminal opens.
  let xtermLoaded = null;
  function loadXterm() {
    const script = (src) => new Promise((resolve, reject) => {
      const s = el('script');
      s.src = src;
      s.onload = resolve;
      s.onerror = () => reject(new Error(`cannot load ${src} (the server's xterm.js files: scripts/web-vendor)`));
      document.head.append(s);
    });
    if (!xtermLoaded) {
      xtermLoaded = script('/vendor/xterm.js').then(() => script('/vendor/addon-fit.js'));
      xtermLoaded.catch(() => { xtermLoaded = null; });
    }
    return xtermLoaded;
  }

  async function openTerminal(title, path, opts) {
    try {
      await loadXterm();
    } catch (e) {
      showError(`terminal: ${e.message}`, 'action');
      return;
    }
    opts = opts || {};
    closeTerminal();
    setText($('terminal-title'), title);
    $('terminal-panel').hidden = false;
    document.body.classList.add('term-open');

    const term = new Terminal({
      cursorBlink: !opts.readOnly,
      disableStdin: !!opts.readOnly,
      fontSize: 13,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      scrollback: 5000,
      theme: { background: '#1b1f24' },
    });
    const fit = new FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open($('terminal'));
    window.virtusTerm = term;

    const ws = new WebSocket(wsUrl(path));
    ws.binaryType = 'arraybuffer';
    const s = { term, ws, observer: null };
    session = s;

    const sendBytes = (bytes) => { if (ws.readyState === WebSocket.OPEN) ws.send(bytes); };
    const sendSize = () => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ resize: { cols: term.cols, rows: term.rows } }));
    };
    ws.onopen = sendSize;
    ws.onmessage = (ev) => term.write(typeof ev.data === 'string' ? ev.data : new Uint8Array(ev.data));
    ws.onclose = (ev) => {
      if (session !== s) return;
      term.write('\r\n[disconnected]' + (ev.code && ev.code !== 1000 ? ` (code ${ev.code})` : '') + '\r\n');
    };
    term.onData((str) => sendBytes(textEncoder.encode(str)));
    term.onBinary((str) => sendBytes(Uint8Array.from(str, (ch) => ch.charCodeAt(0) & 255)));
    term.onResize(sendSize);

    // Fit now and whenever the panel changes size (window resize included).
    const refit = () => { try { fit.fit(); } catch (e) { /* hidden: nothing to fit */ } };
    s.observer = new ResizeObserver(refit);
    s.observer.observe($('terminal'));
    refit();
    term.focus();
  }

  function closeTerminal() {
    const s = session;
    if (!s) return;
    session = null;
    s.observer.disconnect();
    s.ws.onclose = s.ws.onmessage = null;
    s.ws.close();
    s.term.dispose();
    window.virtusTerm = null;
    $('terminal-panel').hidden = true;
    document.body.classList.remove('term-open');
  }

  // The terminal's whole text (for tests): one string, lines joined by \n.
  window.virtusTermText = function () {
    const t = window.virtusTerm;
    if (!t) return '';
    const buf = t.buffer.active, lines = [];
    for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i).translateToString(true));
    return lines.join('\n');
  };

  // ---- start ----

  function init() {
    $('login-form').addEventListener('submit', onLogin);
    $('logout').addEventListener('click', () => showLogin(''));
    $('run-form').addEventListener('submit', onRun);
    $('restore-form').addEventListener('submit', onRestore);
    $('terminal-close').addEventListener('click', closeTerminal);
    $('error').addEventListener('click', () => clearError());
    $('notice').addEventListener('click', () => { $('notice').hidden = true; });
    $('cd-picker').querySelector('.cd-eject').addEventListener('click', () => cdChoose(null));
    $('cd-picker').querySelector('.cd-cancel').addEventListener('click', closeCdPicker);
    // Close the picker on a click elsewhere or on Escape.
    document.addEventListener('mousedown', (ev) => {
      if (cdPicker && !$('cd-picker').contains(ev.target) && ev.target !== cdPicker.btn) closeCdPicker();
    });
    document.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') closeCdPicker(); });

    loadToken();
    if (!token) {
      showLogin('');
    } else {
      $('main').hidden = false;
      $('logout').hidden = false;
      refresh();
    }
    setInterval(refresh, REFRESH_MS);
  }

  init();
})();
