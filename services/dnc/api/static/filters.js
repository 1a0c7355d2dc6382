// Filters of the list. They are the API's repeatable query parameters (values of one
// filter are OR-ed, filters are AND-ed) and live in the page's URL, so a view can be
// shared or reloaded.
import {
  $, el, api, announce, alertError, session, sourceLabel, channelLabel, senderLabel, fieldError,
  timeText, icon,
} from './api.js';

const FIELDS = {
  contact: { label: 'Contact information', help: 'An exact contact, or the start of one followed by * (e.g. 4412*).' },
  sender: { label: 'Sender', help: 'A sender, or ALL for entries that apply to every sender.' },
  channel: { label: 'Channel', select: 'channel' },
  source: { label: 'Source', select: 'source' },
  account: { label: 'Account', select: 'account' },
  added_from: { label: 'Added from', time: true, help: 'Your local time.' },
  added_to: { label: 'Added before', time: true, help: 'Your local time.' },
};

// field → list of values, in the order they were added.
let filters = new Map();
let onChange = () => {};

export function filterParams() {
  const params = new URLSearchParams();
  for (const [field, values] of filters) for (const value of values) params.append(field, value);
  return params;
}

function fromUrl() {
  const found = new Map();
  const params = new URLSearchParams(window.location.search);
  for (const [field, value] of params) {
    if (!(field in FIELDS) || !value.trim()) continue;
    if (FIELDS[field].time) found.set(field, [value]);
    else if (!(found.get(field) || []).includes(value)) found.set(field, [...(found.get(field) || []), value]);
  }
  return found;
}

// The list's own parameters (rows per page, and others the list adds) stay in the URL
// when the filters change; the page number does not (new filters: page 1).
const KEPT = ['size', 'sort'];

function toUrl() {
  const params = filterParams();
  const current = new URLSearchParams(window.location.search);
  for (const name of KEPT) if (current.has(name)) params.set(name, current.get(name));
  const qs = params.toString();
  const url = `${window.location.pathname}${qs ? `?${qs}` : ''}`;
  if (url !== `${window.location.pathname}${window.location.search}`) window.history.pushState(null, '', url);
}

function shown(field, value) {
  if (field === 'channel') return value === 'ALL' ? 'All channels' : channelLabel(value);
  if (field === 'source') return sourceLabel(value);
  if (field === 'sender' && value.toUpperCase() === 'ALL') return senderLabel(null);
  if (FIELDS[field].time) {
    const d = new Date(value);
    return Number.isNaN(d.getTime()) ? value : timeText(d.toISOString()); // as the table writes times
  }
  return value;
}

function changed(message) {
  toUrl();
  renderChips();
  if (message) announce(message);
  onChange();
}

function remove(field, value) {
  const values = value === undefined ? [] : (filters.get(field) || []).filter((v) => v !== value);
  if (values.length) filters.set(field, values);
  else filters.delete(field);
  const what = value === undefined ? `${FIELDS[field].label} filter` : `${shown(field, value)} from the ${FIELDS[field].label} filter`;
  changed(`Removed ${what}.`);
}

function renderChips() {
  const items = [];
  for (const [field, values] of filters) {
    const label = FIELDS[field].label;
    const parts = [el('span', { class: 'chip-name', text: `${label}:` })];
    values.forEach((value, i) => {
      if (i) parts.push(el('span', { class: 'muted', text: ' or ' }));
      parts.push(el('span', { class: 'chip-value', text: shown(field, value) }));
      if (values.length > 1) {
        parts.push(el('button', {
          type: 'button', class: 'icon',
          'aria-label': `Remove ${shown(field, value)} from the ${label} filter`,
          onclick: () => { remove(field, value); focusAfterRemoval(); },
        }, icon('x')));
      }
    });
    parts.push(el('button', {
      type: 'button', class: 'chip-remove', text: 'Remove filter',
      'aria-label': `Remove the ${label} filter`,
      onclick: () => { remove(field); focusAfterRemoval(); },
    }));
    items.push(el('li', { class: 'chip', dataset: { field } }, ...parts));
  }
  $('filter-list').replaceChildren(...items);
  $('filters-clear').hidden = filters.size < 2;
}

function focusAfterRemoval() {
  const next = $('filter-list').querySelector('button');
  (next || $('filter-add')).focus();
}

// --- the "Add filter" form ---------------------------------------------------------------

function activeControl() {
  const select = $('filter-value-select');
  return select.hidden ? $('filter-value') : select;
}

function fieldChosen() {
  const field = $('filter-field').value;
  const spec = FIELDS[field];
  const input = $('filter-value');
  const select = $('filter-value-select');
  fieldError(activeControl(), $('filter-error'), '');
  if (spec.select) {
    const options = spec.select === 'account'
      ? session.me.accounts.map((a) => el('option', { value: a, text: a }))
      : [...$(`filter-options-${spec.select}`).content.cloneNode(true).children];
    select.replaceChildren(...options);
  }
  select.hidden = !spec.select;
  input.hidden = Boolean(spec.select);
  input.type = spec.time ? 'datetime-local' : 'text';
  input.value = '';
  const control = activeControl();
  document.querySelector('label[for="filter-value"], label[for="filter-value-select"]').htmlFor = control.id;
  $('filter-value-help').textContent = spec.help || '';
  control.setAttribute('aria-describedby', 'filter-value-help filter-error');
}

// A typed value the API would refuse (e.g. "bob" as a contact) never becomes a chip: the
// API is asked first, so its own rules decide and its message names the value.
async function refused(field, value) {
  if (field !== 'contact' && field !== 'sender') return '';
  try {
    await api('/v1/entries', { params: { [field]: value, limit: '1' } });
    return '';
  } catch (err) {
    return err.status === 422 ? err.shown : '';
  }
}

async function addValue(event) {
  event.preventDefault();
  const field = $('filter-field').value;
  const control = activeControl();
  let value = control.value.trim();
  if (!value) {
    fieldError(control, $('filter-error'), 'Enter a value.');
    control.focus();
    return;
  }
  if (FIELDS[field].time) {
    const d = new Date(value);
    if (Number.isNaN(d.getTime())) {
      fieldError(control, $('filter-error'), 'Enter a date and time.');
      return;
    }
    value = d.toISOString();
    filters.set(field, [value]);
  } else {
    const problem = await refused(field, value);
    if (problem) {
      fieldError(control, $('filter-error'), `Not added: ${problem}`);
      control.focus();
      return;
    }
    const values = filters.get(field) || [];
    if (!values.includes(value)) filters.set(field, [...values, value]);
  }
  fieldError(control, $('filter-error'), '');
  if (control.tagName === 'INPUT') control.value = '';
  control.focus();
  changed(`Filter ${FIELDS[field].label}: ${shown(field, value)} added.`);
}

function toggleForm(open) {
  $('filter-form').hidden = !open;
  $('filter-add').setAttribute('aria-expanded', String(open));
  if (open) $('filter-field').focus();
  else $('filter-add').focus();
}

// A filter the API refused (e.g. a malformed contact in a shared URL): an alert, not a
// field error, since it is about a chip already there, not the value being typed.
export function showFilterError(message) {
  alertError(`${message}. Remove that filter to see the list.`);
}

export function init(listChanged) {
  onChange = listChanged;
  filters = fromUrl();
  renderChips();
  $('filter-add').addEventListener('click', () => toggleForm($('filter-form').hidden));
  $('filter-done').addEventListener('click', () => toggleForm(false));
  $('filter-form').addEventListener('keydown', (e) => { if (e.key === 'Escape') toggleForm(false); });
  $('filter-field').addEventListener('change', fieldChosen);
  $('filter-form').addEventListener('submit', addValue);
  $('filters-clear').addEventListener('click', () => {
    filters = new Map();
    changed('Every filter removed.');
    $('filter-add').focus();
  });
  window.addEventListener('popstate', () => {
    filters = fromUrl();
    renderChips();
    onChange();
  });
  fieldChosen();
}
