// "Check a contact": is this person on the list, and why — the matching entries of each
// account, most specific first (the API's order), with source and added time — then the
// person's history (every change and its cause), and "Erase this person".
import {
  $, el, api, announce, alertError, session, timeEl, fieldError, plural, waitEffective,
  confirmDialog, sourceLabel, channelLabel, senderLabel, enteredSender, labels, sourceBadge,
  channelBadge,
} from './api.js';

const FIELDS = ['contact', 'channel', 'sender'];
// The words for the history's codes come with the page (dnc.domain.labels), the same the
// exports use; an unknown code (a newer API) is shown as it is rather than hidden.
const actionText = (action) => labels.actions?.[action] ?? action;
const causeKind = (kind) => labels.causes?.[kind] ?? kind ?? '';
// "es" → "Spanish": the browser knows the names of languages.
const languages = new Intl.DisplayNames(['en'], { type: 'language' });
function languageText(code) {
  try { return languages.of(code) ?? code; } catch { return code; }
}

// How the service read a reply: "matched “stop texting” (English)".
function matched(c) {
  if (!c.phrase) return '';
  return `matched “${c.phrase}”${c.language ? ` (${languageText(c.language)})` : ''}`;
}

// A reviewer's confirmation: who decided, the reply, and what it blocks.
function reviewed(c) {
  const s = c.scope ?? {};
  const senders = s.senders === 'all' ? 'all senders' : 'this sender';
  const channels = s.channels === 'all' ? 'all channels' : 'this channel';
  const decision = c.decision === 'dismissed' ? 'Dismissed' : 'Confirmed';
  return `${decision} by ${c.key}: “${c.text}”; blocks ${senders} on ${channels}`;
}

let last = null; // the last check: {contact, accounts}
let onErased = async () => {};

function clearErrors() {
  for (const f of FIELDS) fieldError($(`check-${f}`), $(`check-${f}-error`), '');
}

// The check answers from the index, which keeps senders as compared ("acme"); the
// history's causes say how they were entered ("ACME").
function writtenSenders(history) {
  const written = {};
  for (const h of history) {
    const s = h.entry?.sender;
    if (s && h.cause?.senders?.[s]) written[s] = h.cause.senders[s];
  }
  return written;
}

function entriesTable(result, written) {
  const rows = result.entries.map((e) => el('tr', {},
    el('td', {}, channelBadge(e.channel)),
    el('td', { text: senderLabel(written[e.sender] ?? enteredSender(e)) }),
    el('td', {}, sourceBadge(e.source)),
    el('td', {}, timeEl(e.added_at), e.expires_at ? el('span', { class: 'muted' }, ' · expires ', timeEl(e.expires_at)) : null),
    el('td', { text: e.blocks ? 'Yes' : 'No' })));
  return el('table', { class: 'check-entries' },
    el('caption', { text: `Entries in ${result.account}, most specific first` }),
    el('thead', {}, el('tr', {}, ...['Channel', 'Sender', 'Source', 'Added', 'Blocks this check']
      .map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, ...rows));
}

// What caused a change, in words: the ids that let someone trace it.
export function causeText(cause) {
  if (!cause) return '';
  const c = cause;
  const details = {
    api: () => `key ${c.key}`,
    import: () => `import ${c.import_id}`,
    journey: () => (c.journey_id ? `journey ${c.journey_id}` : ''),
    inbound_message: () => `message ${c.message_id}: “${c.text}”`,
    inbound_intent: () => [`message ${c.message_id}: “${c.text}”`, matched(c)].filter(Boolean).join(', '),
    review: () => reviewed(c),
    url_unsubscribe: () => (c.campaign_id ? `campaign ${c.campaign_id}` : ''),
    channel_signal: () => `${c.provider} code ${c.error_code}`,
    erasure: () => `key ${c.key}`,
  }[c.kind]?.() ?? '';
  const kind = causeKind(c.kind);
  return details ? `${kind} (${details})` : kind;
}

function historyTable(records, more) {
  const rows = records.map((h) => {
    const e = h.entry;
    const what = h.action === 'erase'
      ? 'Data and history erased; the suppression stays'
      : `${channelLabel(e.channel)} · ${senderLabel(enteredSender(e, h.cause))} · ${sourceLabel(e.source)}`;
    return el('tr', {},
      el('td', {}, timeEl(h.at)),
      el('td', { text: actionText(h.action) }),
      el('td', { text: h.account }),
      el('td', { text: what }),
      el('td', { text: causeText(h.cause) }));
  });
  if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 5, class: 'empty', text: 'No history.' })));
  const caption = more ? `History, newest first (the latest ${records.length} changes)` : 'History, newest first';
  return el('table', { id: 'check-history', class: 'check-history' },
    el('caption', { text: caption }),
    el('thead', {}, el('tr', {}, ...['When', 'Change', 'Account', 'Entry', 'Cause']
      .map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, ...rows));
}

function render(contact, results, channel, sender, history) {
  const blocked = results.filter((r) => r.blocked).map((r) => r.account);
  const listed = results.filter((r) => r.entries.length);
  const shown = results[0]?.contact || contact;
  const scope = [channel && `on ${channelLabel(channel)}`, sender && `from ${sender}`].filter(Boolean).join(' ');
  const headline = blocked.length
    ? `${shown} is on the Do Not Contact list: messages ${scope ? `${scope} ` : ''}are blocked in ${blocked.join(', ')}.`
    : listed.length
      ? `${shown} is on the list, but not for messages ${scope}.`
      : `${shown} is not on the Do Not Contact list in ${results.length === 1 ? results[0].account : 'any of your accounts'}.`;
  const out = [el('p', { class: blocked.length ? 'verdict blocked' : 'verdict', text: headline })];
  const written = writtenSenders(history.history);
  for (const r of listed) out.push(entriesTable(r, written));
  out.push(historyTable(history.history, Boolean(history.next_cursor)));
  if (listed.length || history.history.length) {
    out.push(el('div', { class: 'actions' },
      el('button', { type: 'button', id: 'check-erase', class: 'danger', text: 'Erase this person', onclick: erase })));
  }
  $('check-result').replaceChildren(...out);
}

async function run(contact, accounts) {
  const channel = $('check-channel').value;
  const sender = $('check-sender').value.trim();
  const results = await Promise.all(accounts.map(async (account) => {
    const params = { account, contact };
    if (channel) params.channel = channel;
    if (sender) params.sender = sender;
    return { ...(await api('/v1/check', { params })).data, account };
  }));
  const params = new URLSearchParams({ contact, limit: '100' });
  for (const account of accounts) params.append('account', account);
  const history = (await api('/v1/history', { params })).data;
  last = { contact, accounts };
  render(contact, results, channel, sender, history);
}

async function check(event) {
  event.preventDefault();
  clearErrors();
  const contact = $('check-contact').value.trim();
  if (!contact) {
    fieldError($('check-contact'), $('check-contact-error'), 'Enter a phone number or an e-mail address.');
    $('check-contact').focus();
    return;
  }
  const accounts = $('check-account').value ? [$('check-account').value] : session.me.accounts;
  $('check-result').replaceChildren(el('p', { class: 'muted', text: 'Checking…' }));
  try {
    await run(contact, accounts);
  } catch (err) {
    $('check-result').replaceChildren();
    const field = FIELDS.includes(err.field) ? err.field : 'contact';
    fieldError($(`check-${field}`), $(`check-${field}-error`), err.status === 422 ? err.shown : err.message);
    $(`check-${field}`).focus();
  }
}

async function erase(event) {
  const { contact, accounts } = last;
  const ok = await confirmDialog({
    title: 'Erase this person?',
    text: `Their contact information in the clear and their whole history are deleted in ${accounts.join(', ')}; `
      + 'one record says that an erasure happened. The suppression stays: their entries keep blocking '
      + 'messages, kept under a contact id, shown masked. This cannot be undone.',
    items: [contact],
    ok: 'Erase',
  }, event.currentTarget, $('check-contact'));
  if (!ok) return;
  try {
    const { status, data } = await api('/v1/erasures', { method: 'POST', json: { contact, accounts } });
    if (status === 202) {
      announce('The erasure was accepted and is being applied.');
      await waitEffective(data.follow_up);
      await run(contact, accounts);
      await onErased();
      return;
    }
    const erased = data.results.reduce((n, r) => n + r.history_records_erased, 0);
    const kept = data.results.reduce((n, r) => n + r.entries_kept, 0);
    await run(contact, accounts);
    await onErased();
    announce(`Erased: ${plural(erased, 'history record')} deleted; ${plural(kept, 'entry', 'entries')} `
      + `${kept === 1 ? 'keeps' : 'keep'} blocking as ${data.contact}.`);
  } catch (err) {
    alertError(`Nothing was erased: ${err.message}`);
  }
}

// erased: called after an erasure (the list shows the person's entries masked now).
export function init(erased) {
  onErased = erased;
  const select = $('check-account');
  select.replaceChildren(el('option', { value: '', text: 'All my accounts' }),
    ...session.me.accounts.map((a) => el('option', { value: a, text: a })));
  $('check-form').addEventListener('submit', check);
}
