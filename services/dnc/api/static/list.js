// The list: newest first, paged with the API's cursor, with the total; selection across
// pages; delete (one with its bin button, or the selection) after a confirmation; export.
import {
  $, el, api, announce, alertError, timeEl, plural, download, waitEffective, confirmDialog,
  channelLabel, senderLabel, enteredSender, icon, sourceBadge, channelBadge,
} from './api.js';
import { filterParams, showFilterError } from './filters.js';

const state = {
  cursors: [null], // cursor of each page seen so far (page 0 has none)
  page: 0,
  entries: [],
  total: 0,
  totalIsLowerBound: false, // the filter matches more than `total` (counted up to a bound)
  next: null,
  selected: new Map(), // key → entry, kept across pages until the filters change
  loading: 0,
  pending: Promise.resolve(),
};

// An entry kept under a contact id (privacy mode, or an erased person) is listed masked;
// its full id (contact_id) is what identifies it.
const stored = (e) => e.contact_id ?? e.contact;
const keyOf = (e) => JSON.stringify([e.account, stored(e), e.channel, e.sender]);
const keyBody = (e) => ({ account: e.account, contact: stored(e), channel: e.channel, sender: e.sender });
const describe = (e) => `${e.contact} · ${channelLabel(e.channel)} · ${senderLabel(enteredSender(e))} · ${e.account}`;
const pageSize = () => Number($('page-size').value) || 25;
const DEFAULT_SIZE = '25';
const DEFAULT_SORT = '-added';
const sortOrder = () => $('sort').value || DEFAULT_SORT;

// The column the list is sorted by, said on its header (aria-sort) and in the caption.
function showSort() {
  const order = sortOrder();
  const column = order.replace(/^-/, '');
  for (const th of $('entries').querySelectorAll('th[data-sort]')) {
    if (th.dataset.sort === column) th.setAttribute('aria-sort', order.startsWith('-') ? 'descending' : 'ascending');
    else th.removeAttribute('aria-sort');
  }
  $('entries-caption').textContent = `Contacts on the Do Not Contact list, ${$('sort').selectedOptions[0].textContent.toLowerCase()}`;
}

// Page number and rows per page live in the URL (left out when they are the defaults), so
// a reload or a shared link opens the same page. Replaced, not pushed: Back goes to the
// previous filters, not through every page seen.
function toUrl() {
  const params = new URLSearchParams(window.location.search);
  if (state.page > 0) params.set('page', String(state.page + 1));
  else params.delete('page');
  if ($('page-size').value !== DEFAULT_SIZE) params.set('size', $('page-size').value);
  else params.delete('size');
  if (sortOrder() !== DEFAULT_SORT) params.set('sort', sortOrder());
  else params.delete('sort');
  const qs = params.toString();
  const url = `${window.location.pathname}${qs ? `?${qs}` : ''}`;
  if (url !== `${window.location.pathname}${window.location.search}`) window.history.replaceState(null, '', url);
}

// The page the URL names: the API pages with cursors, so the pages before it are walked
// (once, when the page is opened) to find its cursor.
async function openUrlPage() {
  const params = new URLSearchParams(window.location.search);
  const size = params.get('size');
  if (size && [...$('page-size').options].some((o) => o.value === size)) $('page-size').value = size;
  const sort = params.get('sort');
  if (sort && [...$('sort').options].some((o) => o.value === sort)) $('sort').value = sort;
  showSort();
  const wanted = Math.min(Math.max(1, Math.floor(Number(params.get('page')) || 1)), 1000) - 1;
  state.cursors = [null];
  state.page = 0;
  state.selected.clear();
  const filtered = filterParams();
  filtered.set('limit', String(pageSize()));
  if (sortOrder() !== DEFAULT_SORT) filtered.set('sort', sortOrder());
  while (state.page < wanted) {
    const cursor = state.cursors[state.page];
    if (cursor) filtered.set('cursor', cursor);
    let next = null;
    try {
      next = (await api('/v1/entries', { params: filtered })).data.next_cursor;
    } catch {
      break; // load() below says what is wrong
    }
    if (!next) break;
    state.cursors[state.page + 1] = next;
    state.page += 1;
  }
  await load();
}

// Filters changed (or first load): back to the first page, selection cleared.
export async function reset() {
  state.cursors = [null];
  state.page = 0;
  state.selected.clear();
  await load();
}

// The first page, selection kept: after an add (the new entry is the newest).
export async function first() {
  state.cursors = [null];
  state.page = 0;
  await load();
}

// Same page again, e.g. after an import.
export const reload = () => load();

// First load: the page and page size the URL names.
export const open = () => openUrlPage();

// The page being loaded: "Next page" pressed twice quickly must not reuse the first
// page's cursor for the third page, so paging waits for it.
function load() {
  state.pending = loadPage();
  return state.pending;
}

async function loadPage() {
  const ticket = ++state.loading;
  const params = filterParams();
  params.set('limit', String(pageSize()));
  if (sortOrder() !== DEFAULT_SORT) params.set('sort', sortOrder());
  const cursor = state.cursors[state.page];
  if (cursor) params.set('cursor', cursor);
  $('entries').setAttribute('aria-busy', 'true');
  try {
    const { data } = await api('/v1/entries', { params });
    if (ticket !== state.loading) return; // a newer request is on its way
    if (!data.entries.length && state.page > 0) { // the last page emptied
      state.page -= 1;
      await load();
      return;
    }
    Object.assign(state, {
      entries: data.entries,
      total: data.total,
      totalIsLowerBound: Boolean(data.total_is_lower_bound),
      next: data.next_cursor,
    });
    render();
    toUrl();
    document.dispatchEvent(new CustomEvent('dnc:listed')); // e.g. the overview follows
  } catch (err) {
    if (ticket !== state.loading) return;
    Object.assign(state, { entries: [], total: 0, totalIsLowerBound: false, next: null });
    render();
    if (err.status === 422) showFilterError(`The list cannot be filtered like this: ${err.shown}`);
    else alertError(`The list could not be loaded: ${err.message}`);
  } finally {
    if (ticket === state.loading) $('entries').removeAttribute('aria-busy');
  }
}

function render() {
  const rows = state.entries.map(rowOf);
  if (!rows.length) {
    rows.push(el('tr', {}, el('td', { colspan: 9, class: 'empty', text: 'No contacts on the list match.' })));
  }
  $('rows').replaceChildren(...rows);
  const size = pageSize();
  const first = state.page * size + 1;
  const last = state.page * size + state.entries.length;
  const of = state.totalIsLowerBound
    ? `more than ${state.total.toLocaleString('en')} contacts`
    : plural(state.total, 'contact');
  $('list-summary').textContent = state.total ? `Showing ${first}–${last} of ${of}` : 'No contacts';
  const pages = state.totalIsLowerBound ? '' : ` of ${Math.ceil(state.total / size)}`;
  $('page-info').textContent = state.total ? `Page ${state.page + 1}${pages}` : '';
  const focused = document.activeElement;
  $('page-prev').disabled = state.page === 0;
  $('page-next').disabled = !state.next;
  if (focused?.disabled) { // e.g. "Next page" on the last page: keep focus in the pager
    (focused === $('page-next') ? $('page-prev') : $('page-next')).focus();
  }
  selectionChanged();
}

function rowOf(e) {
  const key = keyOf(e);
  const select = el('input', {
    type: 'checkbox', 'aria-label': `Select ${describe(e)}`, checked: state.selected.has(key),
  });
  select.addEventListener('change', () => {
    if (select.checked) state.selected.set(key, e);
    else state.selected.delete(key);
    selectionChanged();
  });
  const remove = el('button', {
    type: 'button', class: 'icon', title: 'Delete', 'aria-label': `Delete ${describe(e)}`,
  }, icon('trash'));
  remove.addEventListener('click', () => removeEntries([e], remove));
  // data-label: the column's name, shown on phones where a row is a card.
  return el('tr', { dataset: { key } },
    el('td', {}, select),
    el('td', { class: 'contact', text: e.contact, title: e.contact_id ? 'Kept as a contact id (shown masked)' : null }),
    el('td', { class: e.sender ? '' : 'muted', 'data-label': 'Sender', text: senderLabel(enteredSender(e)) }),
    el('td', { 'data-label': 'Source' }, sourceBadge(e.source)),
    el('td', { 'data-label': 'Channel' }, channelBadge(e.channel)),
    el('td', { 'data-label': 'Account', text: e.account }),
    el('td', { 'data-label': 'Added' }, timeEl(e.added_at)),
    el('td', { class: e.expires_at ? '' : 'muted', 'data-label': 'Expires' }, e.expires_at ? timeEl(e.expires_at) : 'Never'),
    el('td', { class: 'row-actions' }, remove));
}

function selectionChanged() {
  const n = state.selected.size;
  $('delete-selected').disabled = !n;
  $('export-selected').disabled = !n;
  // The words only: the button's icon stays.
  $('delete-selected').querySelector('span').textContent = n ? `Delete selected (${n})` : 'Delete selected';
  $('export-selected').querySelector('span').textContent = n ? `Export selected (${n})` : 'Export selected';
  const onPage = state.entries.filter((e) => state.selected.has(keyOf(e))).length;
  const all = $('select-page');
  all.checked = onPage > 0 && onPage === state.entries.length;
  all.indeterminate = onPage > 0 && onPage < state.entries.length;
}

function selectPage() {
  const on = $('select-page').checked;
  for (const e of state.entries) {
    if (on) state.selected.set(keyOf(e), e);
    else state.selected.delete(keyOf(e));
  }
  for (const box of $('rows').querySelectorAll('input[type="checkbox"]')) box.checked = on;
  selectionChanged();
}

async function removeEntries(entries, opener) {
  const one = entries.length === 1;
  const ok = await confirmDialog({
    title: one ? 'Delete this contact from the list?' : `Delete ${entries.length} contacts from the list?`,
    text: 'Messages to them are no longer blocked by these entries.',
    items: entries.map(describe),
    ok: one ? 'Delete' : `Delete ${entries.length}`,
  }, opener, $('list-h'));
  if (!ok) return;
  try {
    const { status, data } = await api('/v1/entries', { method: 'DELETE', json: entries.map(keyBody) });
    for (const e of entries) state.selected.delete(keyOf(e));
    if (status === 202) {
      announce('The deletion was accepted and is being applied.');
      await waitEffective(data.follow_up);
    }
    await load();
    if (status !== 202) {
      const gone = data.absent ? `; ${plural(data.absent, 'entry was', 'entries were')} already gone` : '';
      announce(`Deleted ${plural(data.removed, 'contact')} from the list${gone}.`);
    }
  } catch (err) {
    alertError(`Nothing was deleted: ${err.message}`);
  }
}

// CSV has one table per file: with the history it is two files, in a .zip. Said before
// the download, not discovered after it.
const ZIP_NOTE = 'CSV with history downloads a .zip holding entries.csv and history.csv.';
function exportNote() {
  const zip = $('export-format').value === 'csv' && $('export-history').checked;
  $('export-note').textContent = zip ? ZIP_NOTE : '';
}

async function exportEntries(selectedOnly) {
  const format = $('export-format').value;
  const history = $('export-history').checked;
  const withHistory = history ? ' with their history' : '';
  const as = history && format === 'csv' ? 'a .zip of two CSV files (entries.csv, history.csv)' : format.toUpperCase();
  try {
    // The file lists the entries in the order the page shows them (the API sorts).
    const sort = sortOrder() !== DEFAULT_SORT ? { sort: sortOrder() } : {};
    if (selectedOnly) {
      const keys = [...state.selected.values()].map(keyBody);
      const params = { format, ...sort };
      if (history) params.history = 'true';
      const headers = await download('/v1/entries/export', { method: 'POST', params, json: { keys } });
      const missing = Number(headers.get('X-DNC-Missing') || 0);
      const note = missing ? ` (${plural(missing, 'was', 'were')} no longer on the list)` : '';
      announce(`Exported ${plural(keys.length - missing, 'selected contact')}${withHistory} as ${as}${note}.`);
    } else {
      const params = filterParams();
      params.set('format', format);
      if (sort.sort) params.set('sort', sort.sort);
      if (history) params.set('history', 'true');
      await download('/v1/entries/export', { params });
      const what = state.totalIsLowerBound ? 'the matching contacts' : plural(state.total, 'contact');
      announce(`Exported ${what}${withHistory} as ${as}.`);
    }
  } catch (err) {
    alertError(`The export failed: ${err.message}`);
  }
}

export function init() {
  $('select-page').addEventListener('change', selectPage);
  $('page-next').addEventListener('click', async () => {
    await state.pending;
    if (!state.next) return;
    state.cursors[state.page + 1] = state.next;
    state.page += 1;
    load();
  });
  $('page-prev').addEventListener('click', async () => {
    await state.pending;
    if (state.page === 0) return;
    state.page -= 1;
    load();
  });
  $('sort').addEventListener('change', () => { // a new order: its own cursors, page 1
    state.cursors = [null];
    state.page = 0;
    showSort();
    load();
  });
  $('page-size').addEventListener('change', () => {
    state.cursors = [null];
    state.page = 0;
    load();
  });
  $('delete-selected').addEventListener('click', (event) => {
    removeEntries([...state.selected.values()], event.currentTarget);
  });
  $('export-selected').addEventListener('click', () => exportEntries(true));
  $('export-all').addEventListener('click', () => exportEntries(false));
  $('export-format').addEventListener('change', exportNote);
  $('export-history').addEventListener('change', exportNote);
}
