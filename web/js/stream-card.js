// The stream card used on the home page and in search results: the stream's latest thumbnail over a warm gradient
// tile (the placeholder while there is none), title, streamer, viewers and how long it has been live. Pages that
// refresh their listing call `updateStreamCard` so a card follows its stream without being rebuilt (no flicker, and
// keyboard focus stays where it was).

import { h, warmHueFor } from './dom.js';
import { liveFor, viewers } from './format.js';
import { initial } from './session.js';
import { setThumbnail, thumbnailImage } from './thumbnail.js';

export function streamCard(stream) {
  const owner = (stream.owner && stream.owner.username) || 'unknown';
  const tile = h(
    'div',
    { class: 'stream-card__tile' },
    h('span', { class: 'stream-card__initial', text: initial(stream.title), attrs: { 'aria-hidden': 'true' } }),
    h('span', { class: 'badge stream-card__badge' }),
    h('span', { class: 'stream-card__viewers' }),
  );
  tile.style.setProperty('--hue', String(warmHueFor(stream.id || stream.title || '')));
  const card = h(
    'a',
    { class: 'stream-card', attrs: { href: `/s/${encodeURIComponent(stream.id)}` }, data: { streamId: stream.id } },
    tile,
    h(
      'div',
      { class: 'stream-card__body' },
      h('span', { class: 'avatar', text: initial(owner), attrs: { 'aria-hidden': 'true' } }),
      h(
        'div',
        { class: 'stream-card__text' },
        h('h3', { class: 'stream-card__title', text: stream.title }),
        h('p', { class: 'stream-card__owner', text: owner }),
        h('p', { class: 'stream-card__meta' }),
      ),
    ),
  );
  updateStreamCard(card, stream);
  return card;
}

/** Changes text only when it differs: the live grid is an aria-live region, and unchanged text is not news. */
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** Brings a card up to date with a newer copy of its stream: live or not, viewers, thumbnail. */
export function updateStreamCard(card, stream) {
  const live = stream.status === 'live';
  card.classList.toggle('stream-card--live', live);
  const tile = card.querySelector('.stream-card__tile');
  const badge = tile.querySelector('.stream-card__badge');
  badge.className = `badge ${live ? 'badge--live' : 'badge--offline'} stream-card__badge`;
  setText(badge, live ? 'Live' : 'Offline');
  const count = tile.querySelector('.stream-card__viewers');
  count.hidden = !live;
  setText(count, live ? viewers(stream.viewers) : '');
  setText(card.querySelector('.stream-card__meta'), live ? liveFor(stream.live_since) : 'Offline');
  if (stream.thumbnail_url) {
    const img = tile.querySelector('.stream-card__thumb');
    if (img) setThumbnail(img, stream.thumbnail_url);
    else tile.prepend(thumbnailImage(stream.thumbnail_url, 'stream-card__thumb'));
  }
}
