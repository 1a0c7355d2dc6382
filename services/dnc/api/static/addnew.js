// "Add new": a new line at the top of the list with the seed's fields and rules. An
// e-mail address may only have Email (or all channels); a phone number never Email;
// WhatsApp is not offered (the template leaves it out). The API's 422 is shown next to
// the field it names.
import { $, el, api, announce, session, plural, waitEffective, fieldError } from './api.js';

let onSaved = async () => {};

const FIELDS = ['contact', 'sender', 'channel', 'accounts', 'expires', 'form'];

function control(field) {
  if (field === 'accounts') return $('add-accounts').querySelector('input');
  if (field === 'form') return null;
  return $(`add-${field}`);
}

function clearErrors() {
  for (const field of FIELDS) fieldError(control(field), $(`add-${field}-error`), '');
}

function showError(field, message) {
  const known = field && field.startsWith('accounts') ? 'accounts'
    : field === 'expires_at' || field === 'ttl_days' ? 'expires' : field;
  const target = FIELDS.includes(known) ? known : 'form';
  fieldError(control(target), $(`add-${target}-error`), message);
  (control(target) || $('add-contact')).focus();
}

// The channels a contact may have: e-mail ⇒ Email or all; phone ⇒ anything but Email.
function restrictChannels() {
  const contact = $('add-contact').value.trim();
  const email = contact.includes('@');
  const phone = contact !== '' && !email;
  const channel = $('add-channel');
  for (const option of channel.options) {
    option.disabled = (email && option.value !== '' && option.value !== 'EMAIL')
      || (phone && option.value === 'EMAIL');
  }
  // A chosen channel the contact cannot have is changed, and the change is said where
  // the channel is (never silently).
  let changed = '';
  const before = channel.selectedOptions[0];
  if (before?.disabled) {
    channel.value = email ? 'EMAIL' : '';
    changed = `Changed from ${before.textContent} to ${channel.selectedOptions[0].textContent}: `;
  }
  const rule = email ? 'an e-mail address can only have Email, or All channels' : '';
  $('add-channel-help').textContent = changed
    ? `${changed}${rule || 'a phone number cannot have Email'}.`
    : email ? 'An e-mail address: Email, or All channels' : 'WhatsApp: use a journey, or All channels';
  $('add-channel-help').classList.toggle('changed', Boolean(changed));
}

function close() {
  $('add-rows').replaceChildren();
  $('add-new').focus();
}

async function save(event) {
  event.preventDefault();
  clearErrors();
  const contact = $('add-contact').value.trim();
  const accounts = [...$('add-accounts').querySelectorAll('input:checked')].map((i) => i.value);
  if (!contact) {
    showError('contact', 'Enter a phone number (international format) or an e-mail address.');
    return;
  }
  if (!accounts.length) {
    showError('accounts', 'Choose at least one account.');
    return;
  }
  const expires = $('add-expires').value;
  const body = {
    contact,
    channel: $('add-channel').value || null,
    sender: $('add-sender').value.trim() || null,
    accounts,
    // datetime-local is the user's local time; the API wants RFC 3339.
    expires_at: expires ? new Date(expires).toISOString() : null,
  };
  const button = $('add-rows').querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    const { status, data } = await api('/v1/entries', { method: 'POST', json: body });
    if (status === 202) {
      announce(`${contact} was accepted and is being added.`);
      await waitEffective(data.follow_up);
      close();
      await onSaved();
      announce(`${contact} was added.`);
      return;
    }
    const added = data.results.filter((r) => r.outcome === 'added').map((r) => r.account);
    const present = data.results.filter((r) => r.outcome !== 'added').map((r) => r.account);
    const shown = data.results[0]?.entry?.contact || contact;
    close();
    await onSaved();
    const parts = [];
    if (added.length) parts.push(`added to ${added.join(', ')}`);
    if (present.length) parts.push(`already on the list in ${present.join(', ')}`);
    announce(`${shown}: ${parts.join('; ')}.`);
  } catch (err) {
    if (err.status === 422) showError(err.field, err.shown);
    else if (err.status === 403) showError('accounts', err.message);
    else showError('form', `Not saved: ${err.message}`);
  } finally {
    if (button.isConnected) button.disabled = false;
  }
}

export function open() {
  if ($('add-contact')) {
    $('add-contact').focus();
    return;
  }
  const row = $('add-row-template').content.firstElementChild.cloneNode(true);
  const group = row.querySelector('#add-accounts');
  const accounts = session.me.accounts;
  accounts.forEach((account, i) => {
    const id = `add-account-${i}`;
    group.append(el('div', { class: 'check' },
      el('input', {
        type: 'checkbox', id, name: 'accounts', value: account, form: 'add-form',
        checked: accounts.length === 1, 'aria-describedby': 'add-accounts-error',
      }),
      el('label', { for: id, text: account })));
  });
  group.querySelector('legend').textContent = `Accounts (${plural(accounts.length, 'available')})`;
  $('add-rows').replaceChildren(row);
  $('add-contact').addEventListener('input', restrictChannels);
  $('add-cancel').addEventListener('click', close);
  row.addEventListener('keydown', (e) => { if (e.key === 'Escape') close(); });
  $('add-contact').focus();
}

export function init(saved) {
  onSaved = saved;
  $('add-form').addEventListener('submit', save);
  $('add-new').addEventListener('click', open);
}
