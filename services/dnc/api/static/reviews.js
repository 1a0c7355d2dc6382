// "Needs review": replies that may be opt-outs in the person's own words (GET /v1/reviews),
// with one-click confirm (adds the opt-out) and dismiss. Kept in this module and its own
// template (reviews_panel.html) so the rest of the page is untouched.
import { $, api, el, announce, alertError, channelLabel, senderLabel, timeEl, plural, waitEffective } from './api.js';

const WARN_AFTER_BUSINESS_DAYS = 5; // half of the FCC's ten business days
const VERDICTS = { opt_out: 'Opt-out', possible_opt_out: 'Possible opt-out' };

let onConfirmed = () => {};

// Whole business days (Monday to Friday) from `iso` to now.
export function businessDaysSince(iso, now = new Date()) {
  const day = new Date(iso);
  let days = 0;
  day.setUTCDate(day.getUTCDate() + 1);
  while (day <= now) {
    const weekday = day.getUTCDay();
    if (weekday !== 0 && weekday !== 6) days += 1;
    day.setUTCDate(day.getUTCDate() + 1);
  }
  return days;
}

function row(review) {
  const who = review.contact;
  const scope = el('select', { 'aria-label': `Block ${who} for` },
    el('option', { value: '', text: 'Account default' }),
    el('option', { value: 'this', text: 'This sender' }),
    el('option', { value: 'all', text: 'All senders' }));
  const verdict = el('td', {},
    el('strong', { text: VERDICTS[review.verdict] ?? review.verdict }),
    review.phrase ? el('span', { class: 'muted', text: ` · “${review.phrase}”` }) : null);
  return el('tr', { dataset: { review: review.review_id } },
    el('td', {}, timeEl(review.created_at)),
    el('td', { text: review.account }),
    el('td', { class: 'contact', text: who }),
    el('td', { text: `${channelLabel(review.channel)} · ${senderLabel(review.sender)}` }),
    el('td', { class: 'message', text: `“${review.text}”` }),
    verdict,
    el('td', { class: 'row-actions' }, scope,
      el('button', {
        type: 'button', class: 'primary', text: 'Confirm opt-out',
        'aria-label': `Confirm opt-out of ${who}`,
        onclick: () => decide(review, 'confirm', scope.value),
      }),
      el('button', {
        type: 'button', text: 'Dismiss', 'aria-label': `Dismiss ${who}`,
        onclick: () => decide(review, 'dismiss'),
      })));
}

function render(data) {
  const count = $('reviews-count');
  count.textContent = String(data.open);
  count.classList.toggle('empty', data.open === 0);
  const oldest = data.reviews[0];
  const late = oldest ? businessDaysSince(oldest.created_at) : 0;
  const warning = $('reviews-warning');
  warning.hidden = late <= WARN_AFTER_BUSINESS_DAYS;
  warning.textContent = warning.hidden ? ''
    : `The oldest reply has waited ${late} business days: opt-outs must be honoured within ten.`;
  $('reviews-summary').textContent = data.open
    ? `${plural(data.open, 'reply', 'replies')} to review, oldest first`
    : 'Nothing to review.';
  $('review-rows').replaceChildren(...data.reviews.map(row));
}

export async function load() {
  try {
    const { data } = await api('/v1/reviews', { params: { limit: 200 } });
    render(data);
  } catch (err) {
    alertError(`Cannot load the replies to review: ${err.message}`);
  }
}

async function decide(review, action, senders = '') {
  const body = action === 'confirm' && senders ? { senders } : {};
  try {
    const { status, data } = await api(`/v1/reviews/${encodeURIComponent(review.review_id)}/${action}`,
      { method: 'POST', json: body });
    if (action === 'confirm') {
      if (status === 202) await waitEffective(data.follow_up);
      announce(`Confirmed: ${review.contact} is on the Do Not Contact list.`);
      onConfirmed();
    } else {
      announce(`Dismissed the reply from ${review.contact}.`);
    }
  } catch (err) {
    alertError(`Cannot ${action} this reply: ${err.message}`);
  }
  await load();
  $('reviews-h').focus();
}

export function init(confirmed = () => {}) {
  onConfirmed = confirmed;
  $('reviews-h').tabIndex = -1;
  $('reviews-refresh').addEventListener('click', load);
  load();
}
