// "Check a contact": is this person on the list, and why — the matching entries of each
// account, most specific first (the API's order), with source and added time.
import {
  $, el, api, session, timeEl, fieldError, sourceLabel, channelLabel, senderLabel,
} from './api.js';

const FIELDS = ['contact', 'channel', 'sender'];

function clearErrors() {
  for (const f of FIELDS) fieldError($(`check-${f}`), $(`check-${f}-error`), '');
}

function entriesTable(result) {
  const rows = result.entries.map((e) => el('tr', {},
    el('td', { text: channelLabel(e.channel) }),
    el('td', { text: senderLabel(e.sender) }),
    el('td', { text: sourceLabel(e.source) }),
    el('td', {}, timeEl(e.added_at)),
    el('td', { text: e.blocks ? 'Yes' : 'No' })));
  return el('table', { class: 'check-entries' },
    el('caption', { text: `Entries in ${result.account}, most specific first` }),
    el('thead', {}, el('tr', {}, ...['Channel', 'Sender', 'Source', 'Added', 'Blocks this check']
      .map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, ...rows));
}

function render(contact, results, channel, sender) {
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
  for (const r of listed) out.push(entriesTable(r));
  $('check-result').replaceChildren(...out);
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
  const channel = $('check-channel').value;
  const sender = $('check-sender').value.trim();
  const accounts = $('check-account').value ? [$('check-account').value] : session.me.accounts;
  $('check-result').replaceChildren(el('p', { class: 'muted', text: 'Checking…' }));
  try {
    const results = await Promise.all(accounts.map(async (account) => {
      const params = { account, contact };
      if (channel) params.channel = channel;
      if (sender) params.sender = sender;
      return { ...(await api('/v1/check', { params })).data, account };
    }));
    render(contact, results, channel, sender);
  } catch (err) {
    $('check-result').replaceChildren();
    const field = FIELDS.includes(err.field) ? err.field : 'contact';
    fieldError($(`check-${field}`), $(`check-${field}-error`), err.status === 422 ? err.shown : err.message);
    $(`check-${field}`).focus();
  }
}

export function init() {
  const select = $('check-account');
  select.replaceChildren(el('option', { value: '', text: 'All my accounts' }),
    ...session.me.accounts.map((a) => el('option', { value: a, text: a })));
  $('check-form').addEventListener('submit', check);
}
