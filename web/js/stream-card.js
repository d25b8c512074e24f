// The stream card used on the home page: a warm gradient tile (we have no thumbnails), title, streamer, viewers
// and how long it has been live.

import { h, warmHueFor } from './dom.js';
import { liveFor, viewers } from './format.js';
import { initial } from './session.js';

export function streamCard(stream) {
  const live = stream.status === 'live';
  const owner = (stream.owner && stream.owner.username) || 'unknown';
  const tile = h(
    'div',
    { class: 'stream-card__tile' },
    h('span', { class: 'stream-card__initial', text: initial(stream.title), attrs: { 'aria-hidden': 'true' } }),
    live ? h('span', { class: 'badge badge--live stream-card__badge', text: 'Live' }) : h('span', { class: 'badge badge--offline stream-card__badge', text: 'Offline' }),
    live ? h('span', { class: 'stream-card__viewers', text: viewers(stream.viewers) }) : null,
  );
  tile.style.setProperty('--hue', String(warmHueFor(stream.id || stream.title || '')));
  const meta = live ? liveFor(stream.live_since) : 'Offline';
  return h(
    'a',
    { class: `stream-card${live ? ' stream-card--live' : ''}`, attrs: { href: `/s/${encodeURIComponent(stream.id)}` }, data: { streamId: stream.id } },
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
        h('p', { class: 'stream-card__meta', text: meta }),
      ),
    ),
  );
}
