// The import wizard: choose file → skip rows and map columns (a preview of the first
// rows; undo per column; unmapped = skipped) → optional default country → Analyze
// (counts, the first invalid rows with reasons) → accounts → Import, with a live
// progress bar and a notice when it finishes.
import {
  $, el, api, announce, alertError, session, plural, sleep, fieldError, openDialog, fileProblem,
} from './api.js';

const TARGETS = { '': 'Skip (not imported)', contact: 'Contact information', sender: 'Sender', channel: 'Channel' };
// An invalid row's field as the mapping step names it, not the API's field name.
const FIELD_NAMES = { ...TARGETS, file: 'File' };
const POLL_MS = 250;
const LISTED_MS = 15000; // the longest a finished import waits for the list to show it

const w = {
  file: null, preview: null, mapping: [], history: [], uploadId: null, options: null, onDone: null,
};

function show(step) {
  for (const section of $('import-dialog').querySelectorAll('section[data-step]')) {
    section.hidden = section.dataset.step !== step;
  }
  for (const item of $('import-dialog').querySelectorAll('.steps li')) {
    if (item.dataset.stepName === step) item.setAttribute('aria-current', 'step');
    else item.removeAttribute('aria-current');
  }
  $('import-dialog').querySelector(`section[data-step="${step}"] h3`).focus();
}

const columnName = (i) => `Column ${i + 1}`;

// --- step 1: the file ------------------------------------------------------------------

async function toMap() {
  const file = $('import-file').files[0];
  fieldError($('import-file'), $('import-file-error'), '');
  if (!file) {
    fieldError($('import-file'), $('import-file-error'), 'Choose a file to import.');
    $('import-file').focus();
    return;
  }
  const problem = fileProblem(file);
  if (problem) {
    fieldError($('import-file'), $('import-file-error'), problem);
    $('import-file').focus();
    return;
  }
  const form = new FormData();
  form.append('file', file);
  try {
    const { data } = await api('/v1/imports/preview', { method: 'POST', form, params: { rows: 12 } });
    if (!data.columns) { // e.g. only blank lines: nothing to map
      const shown = data.file.used ? `${data.file.name}: ${data.file.used}` : data.file.name;
      fieldError($('import-file'), $('import-file-error'), `“${shown}” has no rows to import.`);
      $('import-file').focus();
      return;
    }
    if (file !== w.file) {
      Object.assign(w, { file, uploadId: null, mapping: Array(data.columns).fill(''), history: [] });
      w.history = w.mapping.map(() => []);
    }
    w.preview = data;
    const used = data.file.used ? ` (the file ${data.file.used} inside)` : '';
    $('import-file-name').textContent = `${data.file.name}${used}: ${plural(data.columns, 'column')}.`;
    buildPreview();
    show('map');
  } catch (err) {
    fieldError($('import-file'), $('import-file-error'), err.status === 422 || err.status === 413 ? err.shown : err.message);
    $('import-file').focus();
  }
}

// --- step 2: skip rows, map columns ---------------------------------------------------------

function buildPreview() {
  const head = w.mapping.map((_, i) => {
    const id = `import-map-${i}`;
    const select = el('select', { id, dataset: { column: i } },
      ...Object.entries(TARGETS).map(([value, text]) => el('option', { value, text })));
    select.addEventListener('change', () => mapColumn(i, select.value));
    const undo = el('button', {
      type: 'button', class: 'undo', text: 'Undo', 'aria-label': `Undo the mapping of ${columnName(i)}`,
    });
    undo.addEventListener('click', () => undoColumn(i));
    return el('th', { scope: 'col' }, el('label', { for: id, text: columnName(i) }), select, undo);
  });
  $('import-map-row').replaceChildren(el('th', { scope: 'col', text: 'Row' }), ...head);
  const body = w.preview.rows.map(({ row, cells }) => el('tr', { dataset: { row } },
    el('th', { scope: 'row', text: String(row) }),
    ...w.mapping.map((_, i) => el('td', { text: cells[i] ?? '' }))));
  $('import-preview').tBodies[0].replaceChildren(...body);
  syncMap();
}

function syncMap() {
  const skip = Number($('import-skip').value) || 0;
  w.mapping.forEach((target, i) => {
    $(`import-map-${i}`).value = target;
    $('import-map-row').querySelectorAll('button.undo')[i].disabled = !w.history[i].length;
  });
  for (const tr of $('import-preview').tBodies[0].rows) {
    const skipped = Number(tr.dataset.row) <= skip;
    tr.classList.toggle('skipped', skipped);
    tr.title = skipped ? 'Skipped' : '';
    [...tr.cells].slice(1).forEach((td, i) => td.classList.toggle('mapped', Boolean(w.mapping[i]) && !skipped));
  }
}

function mapColumn(i, target) {
  if (w.mapping[i] === target) return;
  const other = target ? w.mapping.indexOf(target) : -1;
  if (other >= 0 && other !== i) { // one column per field: the other one is unmapped
    w.history[other].push(target);
    w.mapping[other] = '';
    $('import-map-note').textContent = `${TARGETS[target]} was moved from ${columnName(other)} to ${columnName(i)}.`;
  } else {
    $('import-map-note').textContent = '';
  }
  fieldError(null, $('import-map-error'), '');
  w.history[i].push(w.mapping[i]);
  w.mapping[i] = target;
  syncMap();
}

function undoColumn(i) {
  if (!w.history[i].length) return;
  const previous = w.history[i].pop();
  const other = previous ? w.mapping.indexOf(previous) : -1;
  if (other >= 0 && other !== i) w.mapping[other] = '';
  w.mapping[i] = previous;
  $('import-map-note').textContent = '';
  syncMap();
  $(`import-map-${i}`).focus();
}

function options() {
  const mapping = {};
  w.mapping.forEach((target, i) => { if (target) mapping[String(i)] = target; });
  const out = { skip_rows: Math.max(0, Math.floor(Number($('import-skip').value) || 0)), mapping };
  const country = $('import-country').value.trim().toUpperCase();
  if (country) out.default_country = country;
  return out;
}

// --- step 3: analysis and accounts ----------------------------------------------------------

async function analyze() {
  fieldError(null, $('import-map-error'), '');
  if (!w.mapping.includes('contact')) {
    fieldError(null, $('import-map-error'), 'Map one column to Contact information.');
    $('import-map-0')?.focus();
    return;
  }
  w.options = options();
  const form = new FormData();
  if (w.uploadId) form.append('upload_id', w.uploadId);
  else form.append('file', w.file);
  form.append('options', JSON.stringify(w.options));
  $('import-analyze').disabled = true;
  try {
    const { data } = await api('/v1/imports/analyze', { method: 'POST', form, params: { invalid_limit: 10 } });
    w.uploadId = data.upload_id;
    renderAnalysis(data);
    show('analyze');
  } catch (err) {
    if (err.status === 404) w.uploadId = null; // the kept upload expired: send the file again
    const target = err.field === 'options.default_country' ? $('import-country') : null;
    fieldError(target, $('import-map-error'), err.status === 422 ? err.shown : err.message);
  } finally {
    $('import-analyze').disabled = false;
  }
}

function renderAnalysis(a) {
  const counts = [
    ['Rows', a.rows], ['Valid (to import)', a.valid], ['Duplicates', a.duplicate],
    ['Invalid', a.invalid], ['Blank rows', a.blank], ['Skipped rows', a.skipped],
  ];
  $('import-counts').replaceChildren(...counts.flatMap(([name, n]) => [
    el('dt', { text: name }), el('dd', { dataset: { count: name }, text: String(n) })]));
  $('import-hints').replaceChildren(...a.hints.map((h) => el('li', { text: h })));
  const invalid = a.invalid_rows.map((r) => el('tr', {},
    el('td', { text: String(r.row) }), el('td', { text: FIELD_NAMES[r.field] ?? r.field }),
    el('td', { text: r.value === null ? '' : String(r.value) }), el('td', { text: r.reason })));
  $('import-invalid').tBodies[0].replaceChildren(...invalid);
  $('import-invalid').caption.textContent = a.invalid > a.invalid_rows_shown
    ? `The first ${a.invalid_rows_shown} of ${a.invalid} invalid rows (they are not imported)`
    : 'Invalid rows (they are not imported)';
  $('import-invalid-wrap').hidden = !invalid.length;
  const accounts = session.me.accounts;
  $('import-accounts').replaceChildren(el('legend', { text: 'Import into accounts' }),
    ...accounts.map((account, i) => el('div', { class: 'check' },
      el('input', { type: 'checkbox', id: `import-account-${i}`, value: account, checked: accounts.length === 1 }),
      el('label', { for: `import-account-${i}`, text: account }))));
  fieldError(null, $('import-accounts-error'), '');
}

// --- step 4: import and progress ------------------------------------------------------------

async function start() {
  const accounts = [...$('import-accounts').querySelectorAll('input:checked')].map((i) => i.value);
  if (!accounts.length) {
    fieldError(null, $('import-accounts-error'), 'Choose at least one account.');
    $('import-accounts').querySelector('input')?.focus();
    return;
  }
  $('import-start').disabled = true;
  try {
    const { data } = await api('/v1/imports', {
      method: 'POST', json: { upload_id: w.uploadId, accounts, options: w.options },
    });
    $('import-progress').value = 0;
    $('import-progress-text').textContent = 'Starting…';
    show('progress');
    follow(data.import_id);
  } catch (err) {
    if (err.status === 404) w.uploadId = null;
    fieldError(null, $('import-accounts-error'), err.status === 422 ? err.shown : err.message);
  } finally {
    $('import-start').disabled = false;
  }
}

async function follow(importId) {
  const bar = $('import-progress');
  let listedBy = null;
  for (;;) {
    let s;
    try {
      s = (await api(`/v1/imports/${importId}`)).data;
    } catch (err) {
      alertError(`The import's progress cannot be read: ${err.message}`);
      return;
    }
    if (s.entries_expected) {
      bar.max = s.entries_expected;
      bar.value = Math.min(s.entries_done, s.entries_expected);
    } else {
      bar.removeAttribute('value'); // counting rows: indeterminate
    }
    const done = `${plural(s.rows_done, 'row')} of ${s.rows_total ?? '…'} read, ${s.added} added, `
      + `${s.already_present} already on the list, ${s.rejected} rejected`;
    // Finished, and (for a while at most) until the list shows it: the notice and the
    // list's new total come together.
    if (s.state === 'finished' && (s.listed !== false || Date.now() > (listedBy ??= Date.now() + LISTED_MS))) {
      bar.max = 1;
      bar.value = 1;
      $('import-progress-text').textContent = `Finished: ${done}.`;
      await w.onDone?.();
      announce(`Import finished: ${s.added} added, ${s.already_present} already on the list, ${plural(s.rejected, 'row')} rejected.`);
      return;
    }
    if (s.state === 'failed') {
      $('import-progress-text').textContent = `Failed: ${s.error}`;
      alertError(`The import failed: ${s.error}`);
      await w.onDone?.();
      return;
    }
    const phase = { applying: 'Applying', done: 'Finished, updating the list' }[s.phase] ?? 'Reading';
    $('import-progress-text').textContent = `${phase}: ${done}.`;
    await sleep(POLL_MS);
  }
}

export function open(event) {
  Object.assign(w, { file: null, preview: null, mapping: [], history: [], uploadId: null, options: null });
  $('import-file').value = '';
  $('import-skip').value = '0';
  $('import-country').value = '';
  for (const id of ['import-file-error', 'import-map-error', 'import-map-note', 'import-accounts-error']) $(id).textContent = '';
  openDialog($('import-dialog'), event?.currentTarget, $('import-open'));
  show('file');
  $('import-file').focus();
}

export function init(done) {
  w.onDone = done;
  const dialog = $('import-dialog');
  $('import-open').addEventListener('click', open);
  $('import-file').addEventListener('change', () => {
    const file = $('import-file').files[0];
    fieldError($('import-file'), $('import-file-error'), file ? fileProblem(file) : '');
  });
  $('import-to-map').addEventListener('click', toMap);
  $('import-analyze').addEventListener('click', analyze);
  $('import-start').addEventListener('click', start);
  $('import-skip').addEventListener('input', syncMap);
  for (const b of dialog.querySelectorAll('[data-back]')) b.addEventListener('click', () => show(b.dataset.back));
  for (const b of dialog.querySelectorAll('[data-close]')) b.addEventListener('click', () => dialog.close());
}
