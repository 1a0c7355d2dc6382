// The HTTP API, the signed-in key (sessionStorage: this tab only), and small DOM helpers.
// Text from the API is only ever put into the page with textContent / text nodes.

const KEY = 'dnc.apiKey';

export const labels = JSON.parse(document.body.dataset.labels || '{}');

export const sourceLabel = (s) => labels.sources?.[s] ?? s;
export const channelLabel = (c) => (c ? labels.channels?.[c] ?? c : 'All channels');
export const senderLabel = (s) => s ?? 'All senders';
// A sender as entered ("ACME"; the list keeps "acme"): the API's sender_shown, or the
// written form its cause (a history record's origin) names.
export const enteredSender = (e, cause) => e.sender_shown ?? cause?.senders?.[e.sender] ?? e.sender;

// The API's limit for an uploaded file (the page is rendered with it).
export const maxFileBytes = Number(document.body.dataset.maxFileBytes) || 15 * 1024 * 1024;

// "15 MB" for a limit, "15.5 MB" for a size (rounded up: never "15.0 MB, more than 15 MB").
export function megabytes(n) {
  const mb = n / (1024 * 1024);
  return Number.isInteger(mb) ? `${mb} MB` : `${(Math.ceil(mb * 10) / 10).toFixed(1)} MB`;
}

// What the API would refuse about a file before reading it (empty, too large), said
// before uploading it; '' when it may be sent.
export function fileProblem(file) {
  if (file.size === 0) return `“${file.name}” is empty: choose a file with the contacts in it.`;
  if (file.size <= maxFileBytes) return '';
  const hint = file.name.toLowerCase().endsWith('.zip')
    ? 'split the list into several files'
    : 'compress it into a .zip (with this one file inside) and upload the .zip';
  return `“${file.name}” is ${megabytes(file.size)}, more than the ${megabytes(maxFileBytes)} limit for a file: ${hint}.`;
}

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set(key) { sessionStorage.setItem(KEY, key); },
  clear() { sessionStorage.removeItem(KEY); session.me = null; },
  me: null, // {name, accounts} from GET /v1/me
};

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error || (typeof body?.detail === 'string' ? body.detail : '') || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.field = this.body.field ?? null;
    this.reason = this.body.reason ?? null;
  }

  // "'12ab' is not a phone number…": the reason with the value it is about.
  get shown() {
    if (!this.reason) return this.message;
    const value = this.body.value;
    return value === null || value === undefined || value === '' ? this.reason : `“${value}” ${this.reason}`;
  }
}

async function send(path, { method = 'GET', json, form, params, key } = {}) {
  const headers = { Authorization: `Bearer ${key ?? session.key ?? ''}` };
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  const qs = params ? new URLSearchParams(params).toString() : '';
  const response = await fetch(qs ? `${path}?${qs}` : path, { method, headers, body });
  if (response.status === 401) document.dispatchEvent(new CustomEvent('dnc:unauthorized'));
  return response;
}

async function failure(response) {
  const text = await response.text();
  let body;
  try { body = text ? JSON.parse(text) : {}; } catch { body = { error: text }; }
  return new ApiError(response.status, body);
}

// JSON request → {status, data, headers}; throws ApiError for a non-2xx answer.
export async function api(path, options = {}) {
  const response = await send(path, options);
  if (!response.ok) throw await failure(response);
  const text = await response.text();
  return { status: response.status, data: text ? JSON.parse(text) : null, headers: response.headers };
}

// A 202 answer's follow-up: wait until the write is effective at the gate.
export async function waitEffective(followUp, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { data } = await api(followUp);
    if (data.status === 'effective') return true;
    await sleep(300);
  }
  return false;
}

export const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// Fetch a file (the key is a header, so a plain link cannot) and hand it to the browser.
export async function download(path, options = {}) {
  const response = await send(path, options);
  if (!response.ok) throw await failure(response);
  const disposition = response.headers.get('Content-Disposition') || '';
  const name = /filename="([^"]+)"/.exec(disposition)?.[1] || 'dnc-export';
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const link = el('a', { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  return response.headers;
}

// --- DOM -----------------------------------------------------------------------------

export const $ = (id) => document.getElementById(id);

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'text') node.textContent = value;
    else if (name === 'class') node.className = value;
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (typeof value === 'boolean') node.toggleAttribute(name, value);
    else node.setAttribute(name, String(value));
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

// An icon of the page's sprite (templates/icons.html), beside words that say the same.
const SVG = 'http://www.w3.org/2000/svg';
export function icon(name) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'i');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const use = document.createElementNS(SVG, 'use');
  use.setAttribute('href', `#i-${name}`);
  svg.append(use);
  return svg;
}

// Source and channel as badges: the words, coloured by the code (style.css) so a list
// can be scanned; the colour only repeats what the words say.
export const sourceBadge = (code) => el('span', { class: `badge source-${code ?? 'none'}`, text: sourceLabel(code) });
export const channelBadge = (code) => el('span', { class: code ? 'badge channel' : 'badge channel all', text: channelLabel(code) });

export function announce(text) {
  $('alert').textContent = '';
  $('notice').textContent = text;
}

export function alertError(text) {
  $('notice').textContent = '';
  $('alert').textContent = text;
}

export function clearNotices() {
  $('notice').textContent = '';
  $('alert').textContent = '';
}

export function fieldError(input, errorNode, message) {
  errorNode.textContent = message || '';
  if (input) {
    if (message) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }
}

// 2026-11-26T05:31:27.123Z → 2026-11-26 05:31:27 UTC: the one way the page writes a time.
export const timeText = (iso) => (iso ? iso.replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC') : '');

export function timeEl(iso) {
  return el('time', { datetime: iso, title: iso, text: timeText(iso) });
}

export const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

// A modal dialog that gives focus back to what opened it (or a fallback) when it closes.
export function openDialog(dialog, opener, fallback) {
  dialog.addEventListener('close', () => {
    const target = opener?.isConnected ? opener : fallback;
    target?.focus();
  }, { once: true });
  dialog.showModal();
}

// Delete confirmation: resolves true when the user confirms.
export function confirmDialog({ title, text, items = [], ok = 'Delete' }, opener, fallback) {
  const dialog = $('confirm-dialog');
  $('confirm-h').textContent = title;
  $('confirm-text').textContent = text;
  const shown = items.slice(0, 10).map((item) => el('li', { text: item }));
  if (items.length > 10) shown.push(el('li', { text: `and ${items.length - 10} more` }));
  $('confirm-items').replaceChildren(...shown);
  $('confirm-ok').textContent = ok;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'confirm'), { once: true });
    openDialog(dialog, opener, fallback);
    $('confirm-cancel').focus();
  });
}
