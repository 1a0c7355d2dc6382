// "Dry run": upload an audience file (read like an import: skip rows, the contact
// column, .txt/.csv/.xlsx/.zip) and see how much of it the list suppresses, and why.
import {
  $, el, api, session, plural, timeEl, fieldError, openDialog, sourceLabel, channelLabel, senderLabel,
  fileProblem,
} from './api.js';

const FIELDS = ['file', 'column', 'account', 'channel', 'sender'];
const SHOWN = 100;

function clearErrors() {
  for (const f of FIELDS) fieldError($(`dryrun-${f}`), $(`dryrun-${f}-error`), '');
}

function showError(field, message) {
  const known = { mapping: 'column', skip_rows: 'column', contacts: 'file' }[field] ?? field;
  const target = FIELDS.includes(known) ? known : 'file';
  fieldError($(`dryrun-${target}`), $(`dryrun-${target}-error`), message);
  $(`dryrun-${target}`).focus();
}

// "1" → column 0; anything else is a header's text (the last skipped row).
function mapping() {
  const text = $('dryrun-column').value.trim() || '1';
  const n = Number(text);
  return Number.isInteger(n) && n >= 1 ? { [String(n - 1)]: 'contact' } : { [text]: 'contact' };
}

function render(data) {
  const c = data.counts;
  const counts = [
    ['Rows', c.rows], ['Valid contacts', c.valid], ['Duplicates', c.duplicate], ['Invalid', c.invalid],
    ['Suppressed', c.suppressed], ['Deliverable', c.deliverable],
  ];
  const out = [el('dl', { class: 'counts', id: 'dryrun-counts' }, ...counts.flatMap(([name, n]) => [
    el('dt', { text: name }), el('dd', { dataset: { count: name }, text: String(n) })]))];
  if (data.suppressed.length) {
    const rows = data.suppressed.map((s) => el('tr', {},
      el('td', { text: String(s.row) }),
      el('td', { text: s.contact }),
      el('td', { text: channelLabel(s.entry.channel) }),
      el('td', { text: senderLabel(s.entry.sender) }),
      el('td', { text: sourceLabel(s.entry.source) }),
      el('td', {}, timeEl(s.entry.added_at))));
    const caption = c.suppressed > data.suppressed.length
      ? `The first ${data.suppressed.length} of ${plural(c.suppressed, 'suppressed contact')} (the CLI writes them all)`
      : 'Suppressed contacts, with the entry that blocks each';
    // A region that may scroll sideways: reachable with the keyboard, and named.
    out.push(el('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Suppressed contacts' }, el('table', { id: 'dryrun-suppressed' },
      el('caption', { text: caption }),
      el('thead', {}, el('tr', {}, ...['Row', 'Contact', 'Channel', 'Sender', 'Source', 'Added']
        .map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, ...rows))));
  }
  if (data.invalid.length) {
    out.push(el('ul', { class: 'hints', id: 'dryrun-invalid' },
      ...data.invalid.slice(0, 20).map((i) => el('li', { text: `Row ${i.row}: “${i.value ?? ''}” ${i.reason}` }))));
  }
  $('dryrun-result').replaceChildren(...out);
}

async function run(event) {
  event.preventDefault();
  clearErrors();
  const file = $('dryrun-file').files[0];
  if (!file) {
    showError('file', 'Choose the audience file.');
    return;
  }
  const problem = fileProblem(file);
  if (problem) {
    showError('file', problem);
    return;
  }
  const skip = Math.max(0, Math.floor(Number($('dryrun-skip').value) || 0));
  const column = $('dryrun-column').value.trim() || '1';
  if (!skip && !(Number.isInteger(Number(column)) && Number(column) >= 1)) {
    showError('column', `“${column}” is a header text: set Skip rows to include the header row (e.g. 1), or give the column's number.`);
    return;
  }
  const form = new FormData();
  form.append('file', file);
  form.append('account', $('dryrun-account').value);
  form.append('channel', $('dryrun-channel').value);
  form.append('sender', $('dryrun-sender').value.trim());
  form.append('options', JSON.stringify({ skip_rows: skip, mapping: mapping() }));
  $('dryrun-run').disabled = true;
  $('dryrun-result').replaceChildren(el('p', { class: 'muted', text: 'Checking the audience…' }));
  try {
    const { data } = await api('/v1/audience/dry-run', {
      method: 'POST', form, params: { suppressed_limit: SHOWN },
    });
    render(data);
  } catch (err) {
    $('dryrun-result').replaceChildren();
    const field = err.field?.startsWith('options.') ? err.field.slice(8) : err.field;
    showError(field, err.status === 422 || err.status === 413 ? err.shown : err.message);
  } finally {
    $('dryrun-run').disabled = false;
  }
}

function open(event) {
  clearErrors();
  $('dryrun-result').replaceChildren();
  openDialog($('dryrun-dialog'), event.currentTarget, $('dryrun-open'));
  $('dryrun-file').focus();
}

export function init() {
  $('dryrun-account').replaceChildren(...session.me.accounts.map((a) => el('option', { value: a, text: a })));
  $('dryrun-open').addEventListener('click', open);
  $('dryrun-form').addEventListener('submit', run);
  for (const b of $('dryrun-dialog').querySelectorAll('[data-close]')) {
    b.addEventListener('click', () => $('dryrun-dialog').close());
  }
}
