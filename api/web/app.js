// acestash's upload page: sign-in, chunked uploads through the MirrorAce
// API with resume, and "my files". The session cookie is HttpOnly; API calls
// carry it with the session's CSRF token in X-CSRF-Token instead of the
// api_token, which this script never keeps.
'use strict';

const $ = (id) => document.getElementById(id);
let session = null; // {name, api_key, csrf, mirrors, max_mirrors}
let page = 1;
const perPage = 20;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

function human(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
}

function duration(s) {
  if (!isFinite(s)) return '…';
  s = Math.round(s);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ApiError is an answer the server gave: retrying the same request will not help.
class ApiError extends Error {}

// api calls a MirrorAce route with the session and returns its result.
async function api(call, fields) {
  const body = new URLSearchParams(fields);
  const resp = await fetch('/api/v1/' + call, {
    method: 'POST', body, credentials: 'same-origin',
    headers: { 'X-CSRF-Token': session.csrf },
  });
  let env;
  try { env = await resp.json(); } catch { throw new Error('HTTP ' + resp.status); }
  if (env.status !== 'success') {
    if (resp.status >= 500) throw new Error(env.result);
    throw new ApiError(env.result);
  }
  return env.result;
}

// ---- sign-in ----

async function loadSession() {
  const resp = await fetch('/web/session', { credentials: 'same-origin' });
  if (!resp.ok) {
    await resp.text(); // read to its end, so the request is done
    return null;
  }
  return resp.json();
}

async function signIn(ev) {
  ev.preventDefault();
  const err = $('signin-error');
  err.textContent = '';
  let resp;
  try {
    resp = await fetch('/web/signin', { method: 'POST', body: new URLSearchParams(new FormData($('signin-form'))), credentials: 'same-origin' });
  } catch {
    err.textContent = 'The server cannot be reached. Try again.';
    return;
  }
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    err.textContent = resp.status === 401 ? 'Sign-in failed: ' + body.error + '. Check the key and token and try again.' : (body.error || 'HTTP ' + resp.status);
    $('api_token').focus();
    return;
  }
  $('api_token').value = '';
  session = body;
  show(true);
}

async function signOut() {
  const resp = await fetch('/web/signout', { method: 'POST', credentials: 'same-origin' });
  await resp.text();
  session = null;
  $('api_key').value = $('api_token').value = '';
  history.replaceState(null, '', location.pathname);
  show();
}

// ---- views ----

// show brings up the view the session and the address ask for; moved says
// the person asked for it, so focus goes to its heading.
function show(moved) {
  $('loading').hidden = true;
  const signedIn = session !== null;
  $('nav').hidden = !signedIn;
  $('signin').hidden = signedIn;
  if (!signedIn) {
    $('upload').hidden = $('files').hidden = true;
    $('api_key').focus();
    return;
  }
  $('who').textContent = 'Signed in as ' + session.name;
  const files = location.hash === '#files';
  $('upload').hidden = files;
  $('files').hidden = !files;
  $('nav-upload').toggleAttribute('aria-current', !files);
  $('nav-files').toggleAttribute('aria-current', files);
  if (files) listFiles(); else { renderMirrors(); renderExpiry(); renderUnfinished(); loadTools(); }
  if (moved) $(files ? 'files-title' : 'upload-title').focus();
}

function renderMirrors() {
  const list = $('mirror-list');
  if (list.childElementCount) return;
  $('mirror-limit').textContent = '(at most ' + session.max_mirrors + ')';
  for (const m of session.mirrors) {
    const box = el('input', { type: 'checkbox', id: 'mirror-' + m.id, value: m.id });
    box.checked = m.allowed && m.default && m.healthy;
    box.disabled = !m.allowed;
    const text = m.name + (m.allowed ? '' : ' (not allowed for this account)') + (m.healthy ? '' : ' — unhealthy: ' + m.problem);
    const label = el('label', { for: box.id }, box, el('span', { text }));
    if (!m.healthy) label.className = 'unhealthy';
    list.append(label);
  }
  list.addEventListener('change', limitMirrors);
  limitMirrors();
}

// limitMirrors keeps the ticked mirrors within max_mirrors.
function limitMirrors() {
  const boxes = [...$('mirror-list').querySelectorAll('input')];
  const full = boxes.filter((b) => b.checked).length >= session.max_mirrors;
  for (const b of boxes) {
    const m = session.mirrors.find((x) => x.id === b.value);
    b.disabled = !m.allowed || (full && !b.checked);
  }
}

function chosenMirrors() {
  return [...$('mirror-list').querySelectorAll('input:checked')].map((b) => b.value);
}

// ---- uploads ----

const pending = 'acestash.upload.';
const fileKey = (f) => pending + JSON.stringify([f.name, f.size, f.lastModified]);
const running = new Map(); // fileKey -> Row, for the uploads this tab is sending

// renderUnfinished lists the uploads kept in localStorage that this tab is
// not sending: those of a tab closed mid-way, or that failed.
function renderUnfinished() {
  const list = $('unfinished-list');
  list.replaceChildren();
  for (let i = 0; i < localStorage.length; i++) {
    const k = localStorage.key(i);
    if (!k.startsWith(pending) || running.has(k)) continue;
    const [name, size] = JSON.parse(k.slice(pending.length));
    list.append(el('li', { text: name + ' (' + human(size) + ')' }));
  }
  $('unfinished').hidden = !list.childElementCount;
}

function startAll(files) {
  $('upload-error').textContent = '';
  const mirrors = chosenMirrors();
  if (!mirrors.length) {
    $('upload-error').textContent = 'Tick at least one mirror.';
    return;
  }
  const password = $('password').value;
  const limit = $('max-downloads').value.trim();
  if (limit && !(Number(limit) >= 1 && Number.isInteger(Number(limit)))) {
    $('upload-error').textContent = 'The download limit must be a whole number of 1 or more.';
    return;
  }
  // Sent with the first chunk, as the password is.
  const terms = { expires: $('expires').value, max_downloads: limit };
  const busy = [];
  for (const f of files) {
    const row = running.get(fileKey(f));
    if (row) busy.push(row); else upload(f, mirrors, password, terms);
  }
  if (busy.length) {
    $('upload-error').textContent = busy.map((r) => r.file.name).join(', ') + (busy.length > 1 ? ' are' : ' is') + ' uploading already.';
  }
  $('file-input').value = '';
  // Bring the newest row into view, or the running one picked again.
  const top = busy.length < files.length ? $('queue').firstElementChild : busy[0]?.li;
  if (top) top.scrollIntoView({ block: 'nearest' });
}

// renderExpiry offers the expiries the account allows, its default chosen.
function renderExpiry() {
  const sel = $('expires');
  const hours = { '1h': 1, '1d': 24, '7d': 168, '30d': 720 };
  const max = session.max_expiry || 0; // seconds; 0: no limit
  for (const o of [...sel.options]) {
    o.hidden = o.disabled = max > 0 && (o.value === 'never' || hours[o.value] * 3600 > max);
  }
  const def = session.default_expiry || max;
  let pick = 'never';
  for (const [v, h] of Object.entries(hours)) if (def > 0 && h * 3600 <= def && !sel.querySelector('[value="' + v + '"]').disabled) pick = v;
  if (def > 0 && pick === 'never') pick = '1h';
  sel.value = pick;
}

// loadTools fills in the ShareX link and the curl line of the account.
async function loadTools() {
  const resp = await fetch('/api/v1/sharex', { credentials: 'same-origin', headers: { 'X-CSRF-Token': session.csrf } });
  if (!resp.ok) return;
  const text = await resp.text();
  const cfg = JSON.parse(text);
  const link = $('sharex');
  link.href = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
  const q = new URLSearchParams(cfg.Parameters || {}).toString();
  const line = 'curl -H "Authorization: ' + cfg.Headers.Authorization + '" --data-binary @FILE "' +
    cfg.RequestURL + (q ? '?' + q : '') + '"';
  $('curl').textContent = line;
  $('copy-curl').onclick = () => copyText(line, $('copy-curl'));
}

// Upload is one file's row: its progress bar, figures and result.
class Row {
  constructor(file) {
    this.file = file;
    this.bar = el('progress', { max: String(file.size || 1), value: '0', 'aria-label': 'Upload of ' + file.name });
    this.stats = el('span', { class: 'stats', 'aria-live': 'polite', text: 'Starting…' });
    this.li = el('li', {}, el('div', { class: 'name', text: file.name + ' (' + human(file.size) + ')' }), this.bar, this.stats);
    $('queue').prepend(this.li);
    this.samples = [];
  }
  progress(sent, size) {
    this.bar.value = sent;
    const now = performance.now();
    this.samples.push([now, sent]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 5000) this.samples.shift();
    const [t0, b0] = this.samples[0];
    const speed = now > t0 ? (sent - b0) / ((now - t0) / 1000) : 0;
    this.stats.textContent = human(sent) + ' of ' + human(size) + ' · ' +
      (speed > 0 ? human(speed) + '/s · ' + duration((size - sent) / speed) + ' left' : '…');
  }
  note(text) { this.stats.textContent = text; }
  done(res) {
    this.bar.value = this.bar.max;
    const link = el('a', { href: res.url, class: 'file-link', text: res.url });
    const copy = el('button', { type: 'button', text: 'Copy link' });
    copy.addEventListener('click', () => copyText(res.url, copy));
    this.stats.replaceWith(el('div', { class: 'done' }, el('span', { text: 'Done:' }), link, copy));
  }
  failed(msg) {
    this.stats.className = 'stats failed';
    this.stats.textContent = 'Failed: ' + msg;
  }
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = 'Copied';
  } catch {
    button.textContent = 'Select and copy';
  }
}

// send posts one chunk; onProgress gets the bytes of it sent so far.
function send(form, range, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('POST', '/api/v1/upload');
    x.setRequestHeader('X-CSRF-Token', session.csrf);
    if (range) x.setRequestHeader('Content-Range', range);
    x.upload.onprogress = (e) => onProgress(e.loaded);
    x.onerror = () => reject(new Error('connection lost'));
    x.onload = () => {
      let env;
      try { env = JSON.parse(x.responseText); } catch { return reject(new Error('HTTP ' + x.status)); }
      if (env.status === 'success') return resolve(env.result);
      if (x.status >= 500) return reject(new Error(env.result));
      reject(new ApiError(env.result));
    };
    x.send(form);
  });
}

// status asks how much of an upload the server holds, waiting while it
// cannot be reached.
async function status(st, row) {
  for (let wait = 250; ; wait = Math.min(wait * 2, 2000)) {
    try {
      return await api('upload/status', { upload_key: st.upload_key, cTracker: st.cTracker });
    } catch (e) {
      if (e instanceof ApiError) throw e;
      row.note('Connection lost; trying again…');
      await sleep(wait);
    }
  }
}

async function upload(file, mirrors, password, terms) {
  const row = new Row(file);
  const key = fileKey(file);
  running.set(key, row);
  renderUnfinished();
  try {
    let st = JSON.parse(localStorage.getItem(key) || 'null');
    let offset = 0;
    if (st) {
      try {
        const s = await status(st, row);
        if (s.info === 'complete') { localStorage.removeItem(key); row.done(s); return; }
        offset = Number(s.received);
        password = ''; // the first chunk set it, and the terms
        terms = null;
      } catch (e) {
        st = null; // the upload key lapsed: start again
      }
    }
    if (!st) {
      const info = await api('file/upload', {});
      st = { upload_key: info.upload_key, cTracker: info.cTracker, chunk: Number(info.max_chunk_size), mirrors };
      localStorage.setItem(key, JSON.stringify(st));
    }
    for (;;) {
      const end = Math.min(offset + st.chunk, file.size);
      const form = new FormData();
      form.append('upload_key', st.upload_key);
      form.append('cTracker', st.cTracker);
      for (const m of st.mirrors) form.append('mirrors[]', m);
      if (password) form.append('file_password', password);
      if (terms && offset === 0) {
        form.append('expires', terms.expires);
        if (terms.max_downloads) form.append('max_downloads', terms.max_downloads);
      }
      form.append('files[]', file.slice(offset, end), file.name);
      const range = file.size > st.chunk ? 'bytes ' + offset + '-' + (end - 1) + '/' + file.size : '';
      let res;
      try {
        res = await send(form, range, (n) => row.progress(offset + Math.min(n, end - offset), file.size));
      } catch (e) {
        if (e instanceof ApiError) throw e;
        const s = await status(st, row); // lost or refused for now: ask where to go on
        if (s.info === 'complete') { res = s; } else { offset = Number(s.received); continue; }
      }
      if (res.info === 'complete') {
        localStorage.removeItem(key);
        row.done(res);
        return;
      }
      offset = end;
      row.progress(offset, file.size);
    }
  } catch (e) {
    row.failed(e.message);
  } finally {
    running.delete(key);
    renderUnfinished();
  }
}

function setupDrop() {
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    startAll([...e.dataTransfer.files]);
  });
  $('file-input').addEventListener('change', (e) => startAll([...e.target.files]));
  $('upload-form').addEventListener('submit', (e) => e.preventDefault());
}

// ---- my files ----

// listFiles shows the page of files; it resolves once they are shown.
async function listFiles() {
  const err = $('files-error');
  err.textContent = '';
  let res;
  try {
    res = await api('file/list', { page: String(page), per_page: String(perPage) });
  } catch (e) {
    err.textContent = 'Cannot list your files: ' + e.message;
    return;
  }
  const rows = $('file-rows');
  rows.replaceChildren();
  const names = Object.fromEntries(session.mirrors.map((m) => [m.id, m.name]));
  for (const f of res.files) {
    const name = f.status === 'active' ? el('a', { href: f.url, text: f.name }) : el('span', { text: f.name });
    const del = el('button', { type: 'button', class: 'danger', 'data-slug': f.slug, 'aria-label': 'Delete ' + f.name, text: 'Delete' });
    del.disabled = f.status !== 'active';
    del.addEventListener('click', () => remove(f, del));
    rows.append(el('tr', { 'data-slug': f.slug },
      el('td', { class: 'name', 'data-label': 'Name' }, name),
      el('td', { 'data-label': 'Size', text: human(Number(f.size)) }),
      el('td', { 'data-label': 'Uploaded', text: f.created }),
      el('td', { 'data-label': 'Status', class: 'status', text: f.status }),
      el('td', { 'data-label': 'Mirrors', text: f.mirrors.map((id) => names[id] || id).join(', ') || '—' }),
      el('td', {}, del)));
  }
  const total = Number(res.total);
  const pages = Math.max(1, Math.ceil(total / perPage));
  $('page-info').textContent = 'Page ' + page + ' of ' + pages + ' · ' + total + ' files';
  $('prev').disabled = page <= 1;
  $('next').disabled = page >= pages;
}

// remove deletes a file on the second press of its button, says so, and
// puts focus on the next file's button (or the previous one's, or the
// heading), where the pressed button was.
async function remove(f, button) {
  if (button.dataset.armed !== 'yes') {
    button.dataset.armed = 'yes';
    button.textContent = 'Press again to delete';
    return;
  }
  const at = [...$('file-rows').rows].findIndex((r) => r.dataset.slug === f.slug);
  button.disabled = true;
  $('files-status').textContent = '';
  let failed = '';
  try {
    await api('file/delete', { files: f.slug });
  } catch (e) {
    failed = 'Cannot delete ' + f.name + ': ' + e.message;
  }
  await listFiles();
  if (failed) $('files-error').textContent = failed; else $('files-status').textContent = 'Deleted ' + f.name + '.';
  const buttons = [...$('file-rows').rows].map((r) => r.querySelector('button'));
  const next = buttons.slice(at + 1).find((b) => !b.disabled) || buttons.slice(0, at).reverse().find((b) => !b.disabled);
  (next || $('files-title')).focus();
}

// ---- start ----

document.addEventListener('DOMContentLoaded', async () => {
  $('signin-form').addEventListener('submit', signIn);
  $('signout').addEventListener('click', signOut);
  $('prev').addEventListener('click', () => { page--; listFiles(); });
  $('next').addEventListener('click', () => { page++; listFiles(); });
  window.addEventListener('hashchange', () => show(true));
  setupDrop();
  try { session = await loadSession(); } catch { session = null; }
  show();
});
