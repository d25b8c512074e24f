// Home: who is live now, the other channels, and search (`/?q=` goes straight to the API's `q`).

import { api, describeError } from '../api.js';
import { byId, fill, h } from '../dom.js';
import { initHeader } from '../session.js';
import { streamCard } from '../stream-card.js';

const PAGE = 12;

/** A grid that loads pages of `GET /api/streams` with the given query and a "Show more" button for the cursor. */
function streamList({ grid, more, query, keep = () => true, empty }) {
  let cursor = null;
  let shown = 0;

  async function load() {
    more.disabled = true;
    const params = new URLSearchParams(query);
    params.set('limit', String(PAGE));
    if (cursor) params.set('cursor', cursor);
    try {
      const body = await api(`/api/streams?${params}`);
      if (!cursor) grid.replaceChildren();
      const streams = (body.streams || []).filter(keep);
      for (const stream of streams) grid.appendChild(streamCard(stream));
      shown += streams.length;
      cursor = body.next_cursor || null;
      more.hidden = !cursor;
      if (shown === 0 && !cursor) fill(grid, h('p', { class: 'empty-note', text: empty }));
    } catch (err) {
      fill(grid, h('p', { class: 'empty-note empty-note--error', text: describeError(err) }));
      more.hidden = true;
    } finally {
      more.disabled = false;
    }
  }

  more.addEventListener('click', load);
  for (let i = 0; i < 3; i += 1) grid.appendChild(h('div', { class: 'stream-card stream-card--skeleton', attrs: { 'aria-hidden': 'true' } }));
  return load();
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
    await streamList({
      grid: byId('results-grid'),
      more: byId('results-more'),
      query: { q },
      empty: 'No streams or streamers match that. Try another word.',
    });
    return;
  }
  await Promise.all([
    streamList({
      grid: byId('live-grid'),
      more: byId('live-more'),
      query: { live: 'true' },
      empty: 'Nobody is live right now. Why not be the first?',
    }),
    streamList({
      grid: byId('others-grid'),
      more: byId('others-more'),
      query: {},
      keep: (s) => s.status !== 'live',
      empty: 'No channels yet.',
    }),
  ]);
}

main();
