// Home: who is live now, the other channels, and search (`/?q=` goes straight to the API's `q`). While the page is
// open the listings are fetched again now and then, so live cards show the stream's newest thumbnail and viewer
// count, streams that went live appear under "Live now", and streams that ended leave it.

import { api, describeError } from '../api.js';
import { byId, fill, h } from '../dom.js';
import { initHeader } from '../session.js';
import { streamCard, updateStreamCard } from '../stream-card.js';

const PAGE = 12;
/** About as often as the origin sends a new thumbnail of a live stream (every ~20 s). */
const REFRESH_MS = 15000;

/**
 * A grid that loads pages of `GET /api/streams` with the given query and a "Show more" button for the cursor.
 * `refresh()` fetches the first page again and updates the cards in place; with `follow`, it also adds streams that
 * joined the first page and drops cards that left it (only while no further page was loaded, so "Show more"
 * results never shift under the reader).
 */
function streamList({ grid, more, query, keep = () => true, empty, follow = false }) {
  let cursor = null;
  let pages = 0;

  function cards() {
    return new Map([...grid.querySelectorAll('a.stream-card[data-stream-id]')].map((el) => [el.dataset.streamId, el]));
  }

  function showEmptyIfNeeded() {
    if (!grid.querySelector('a.stream-card') && !cursor) fill(grid, h('p', { class: 'empty-note', text: empty }));
  }

  async function fetchPage(after) {
    const params = new URLSearchParams(query);
    params.set('limit', String(PAGE));
    if (after) params.set('cursor', after);
    return api(`/api/streams?${params}`);
  }

  async function load() {
    more.disabled = true;
    try {
      const body = await fetchPage(cursor);
      if (!cursor) grid.replaceChildren();
      for (const stream of (body.streams || []).filter(keep)) grid.appendChild(streamCard(stream));
      pages += 1;
      cursor = body.next_cursor || null;
      more.hidden = !cursor;
      showEmptyIfNeeded();
    } catch (err) {
      fill(grid, h('p', { class: 'empty-note empty-note--error', text: describeError(err) }));
      more.hidden = true;
    } finally {
      more.disabled = false;
    }
  }

  async function refresh() {
    if (document.hidden || pages === 0) return;
    let body;
    try {
      body = await fetchPage(null);
    } catch {
      return; // A missed refresh is fine; the next one catches up.
    }
    const streams = (body.streams || []).filter(keep);
    const existing = cards();
    for (const stream of streams) {
      const card = existing.get(stream.id);
      if (card) updateStreamCard(card, stream);
    }
    if (!follow || pages > 1) return;
    const wanted = new Set(streams.map((s) => s.id));
    for (const [id, card] of existing) if (!wanted.has(id)) card.remove();
    const added = streams.filter((s) => !existing.has(s.id));
    if (added.length > 0) {
      grid.querySelector('.empty-note')?.remove();
      for (const stream of added) grid.appendChild(streamCard(stream));
    }
    cursor = body.next_cursor || null;
    more.hidden = !cursor;
    showEmptyIfNeeded();
  }

  more.addEventListener('click', load);
  for (let i = 0; i < 3; i += 1) grid.appendChild(h('div', { class: 'stream-card stream-card--skeleton', attrs: { 'aria-hidden': 'true' } }));
  return { ready: load(), refresh };
}

function refreshEvery(lists) {
  const run = () => lists.forEach((list) => list.refresh());
  setInterval(run, REFRESH_MS);
  // Coming back to a tab that sat in the background: catch up at once rather than at the next tick.
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) run();
  });
}

async function main() {
  initHeader();
  const q = (new URLSearchParams(location.search).get('q') || '').trim();
  if (q) {
    document.title = `${q} · Search · Sunnylive`;
    byId('hero').hidden = true;
    byId('live').hidden = true;
    byId('others').hidden = true;
    byId('results').hidden = false;
    byId('results-title').textContent = `Results for “${q}”`;
    const results = streamList({
      grid: byId('results-grid'),
      more: byId('results-more'),
      query: { q },
      empty: 'No streams or streamers match that. Try another word.',
    });
    await results.ready;
    refreshEvery([results]);
    return;
  }
  const live = streamList({
    grid: byId('live-grid'),
    more: byId('live-more'),
    query: { live: 'true' },
    empty: 'Nobody is live right now. Why not be the first?',
    follow: true,
  });
  const others = streamList({
    grid: byId('others-grid'),
    more: byId('others-more'),
    query: {},
    keep: (s) => s.status !== 'live',
    empty: 'No channels yet.',
  });
  await Promise.all([live.ready, others.ready]);
  refreshEvery([live, others]);
}

main();
