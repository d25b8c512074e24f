// Past broadcasts (`GET /api/streams/{id}/broadcasts`): every publish of a stream is kept as video on demand for a
// while. Shared by the watch page (offered while the stream is offline) and the Studio (listed with delete).

import { api } from './api.js';
import { h, warmHueFor } from './dom.js';
import { clockDuration, dateTime, spokenDuration } from './format.js';
import { thumbnailImage } from './thumbnail.js';

/** One page of a stream's broadcasts, newest first: `{broadcasts, next_cursor}`. */
export async function fetchBroadcasts(streamId, { limit = 6, cursor = null } = {}) {
  const params = new URLSearchParams({ limit: String(limit) });
  if (cursor) params.set('cursor', cursor);
  const body = await api(`/api/streams/${encodeURIComponent(streamId)}/broadcasts?${params}`);
  return {
    broadcasts: Array.isArray(body && body.broadcasts) ? body.broadcasts : [],
    next_cursor: (body && body.next_cursor) || null,
  };
}

/** "broadcast of 2 Dec 2026, 11:02": what a broadcast is called in labels (mid-sentence, hence lower case). */
export function broadcastName(broadcast) {
  return `broadcast of ${dateTime(broadcast.started_at)}`;
}

/** Thumbnail (or the stream's gradient), date and length of a broadcast, for a list row. */
export function broadcastSummary(broadcast) {
  const thumb = h(
    'span',
    { class: 'broadcast__thumb', attrs: { 'aria-hidden': 'true' } },
    broadcast.thumbnail_url ? thumbnailImage(broadcast.thumbnail_url, 'broadcast__img') : null,
    broadcast.live
      ? h('span', { class: 'badge badge--live broadcast__badge', text: 'Live' })
      : h('span', { class: 'broadcast__length', text: clockDuration(broadcast.duration_seconds) }),
  );
  thumb.style.setProperty('--hue', String(warmHueFor(broadcast.stream_id || broadcast.id)));
  return [
    thumb,
    h(
      'span',
      { class: 'broadcast__text' },
      h('time', { class: 'broadcast__date', text: dateTime(broadcast.started_at), attrs: { datetime: broadcast.started_at } }),
      h('span', {
        class: 'broadcast__duration',
        text: broadcast.live ? 'Live now' : spokenDuration(broadcast.duration_seconds),
      }),
    ),
  ];
}
