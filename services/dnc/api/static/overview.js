// The overview panel: the chosen accounts' entries by source and by channel, and a chart
// of entries added and removed per day over the last 90 days — plain SVG (no charting
// library: two bar series need a few rectangles, and nothing has to be vendored).
// Refreshed whenever the list is (re)loaded: same accounts as the list's Account filter.
import { $, el, api, session, sourceBadge, channelBadge, plural } from './api.js';
import { filterParams } from './filters.js';

const SVG = 'http://www.w3.org/2000/svg';
const DAYS = 90;
const HEIGHT = 80;
let ticket = 0;
let shownFor = null; // the accounts (and list version) last drawn

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

// [code, count] pairs as a definition list; each code as the badge the list shows it with.
function counts(node, entries, badge) {
  if (!entries.length) {
    node.replaceChildren(el('dt', { text: 'None' }), el('dd', { dataset: { count: 'None' }, text: '0' }));
    return;
  }
  node.replaceChildren(...entries.flatMap(([code, n]) => {
    const name = badge(code);
    return [el('dt', {}, name), el('dd', { dataset: { count: name.textContent }, text: String(n) })];
  }));
}

function chart(days) {
  const width = days.length * 4;
  const top = Math.max(1, ...days.map((d) => Math.max(d.added, d.removed)));
  const added = days.reduce((n, d) => n + d.added, 0);
  const removed = days.reduce((n, d) => n + d.removed, 0);
  const bars = days.flatMap((d, i) => {
    const h = (n) => (n ? Math.max(1, Math.round((n / top) * HEIGHT)) : 0);
    const tip = `${d.day}: ${d.added} added, ${d.removed} removed`;
    return [
      svg('rect', { class: 'added', x: i * 4, y: HEIGHT - h(d.added), width: 2, height: h(d.added), 'data-day': d.day }, svg('title', {}, tip)),
      svg('rect', { class: 'removed', x: i * 4 + 2, y: HEIGHT - h(d.removed), width: 1.5, height: h(d.removed) }, svg('title', {}, tip)),
    ];
  });
  return svg('svg', {
    viewBox: `0 0 ${width} ${HEIGHT}`, preserveAspectRatio: 'none', role: 'img',
    'aria-label': `Last ${DAYS} days: ${plural(added, 'entry', 'entries')} added, ${removed} removed; `
      + `at most ${top} changes on one day.`,
  }, svg('line', { class: 'axis', x1: 0, y1: HEIGHT, x2: width, y2: HEIGHT }), ...bars);
}

export async function refresh() {
  const accounts = filterParams().getAll('account');
  const mine = ++ticket;
  const params = new URLSearchParams({ days: String(DAYS) });
  for (const a of accounts) params.append('account', a);
  try {
    const { data } = await api('/v1/overview', { params });
    if (mine !== ticket) return;
    const key = JSON.stringify(data);
    if (key === shownFor) return; // nothing changed: keep what is drawn
    shownFor = key;
    const scope = accounts.length ? accounts : session.me.accounts;
    $('overview-scope').textContent = `${plural(data.total, 'entry', 'entries')} in ${scope.join(', ')}.`;
    counts($('overview-sources'), Object.entries(data.by_source), sourceBadge);
    counts($('overview-channels'), Object.entries(data.by_channel)
      .map(([c, n]) => [c === 'ALL' ? null : c, n]), channelBadge);
    $('overview-chart').replaceChildren(chart(data.days));
  } catch (err) {
    if (mine === ticket) $('overview-scope').textContent = `The overview cannot be shown: ${err.message}`;
  }
}

export function init() {
  document.addEventListener('dnc:listed', () => refresh());
}
