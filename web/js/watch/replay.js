// Chat replay (issue 25): while a past broadcast (or a clip of one) plays, the chat panel shows its chat as it was,
// in step with the video: every message whose `offset_ms` (GET /api/streams/{id}/broadcasts/{b}/chat) is at or
// before the playhead. Playing adds messages as their moment comes, seeking redraws the list at the new position,
// pausing stops it (the video sends no time updates). Pages are fetched ahead of the playhead, forward only.

import { api } from '../api.js';
import { h } from '../dom.js';
import { rupiah } from '../format.js';

/** Fetch the next page once the playhead is this close to the last message loaded. */
const LOOKAHEAD_MS = 30000;
const PAGE = 100;

/**
 * `list` is the <ol> to draw into, `video` the element playing. `start(streamId, broadcastId, baseMs)` follows a
 * broadcast (baseMs: where the video's time 0 is in the broadcast, a clip's start); `stop()` lets go.
 */
export function createReplay({ list, video, onActive = () => {} }) {
  let source = null; // {streamId, broadcastId, baseMs}
  let messages = [];
  let nextFrom = 0;
  let done = false;
  let loading = null;
  let shown = 0;
  let generation = 0;

  function item(m) {
    const el =
      m.kind === 'donation'
        ? h('li', { class: 'msg msg--donation' }, h('span', { class: 'msg__user', text: m.user.username }), ` ${rupiah(m.amount)} `, h('span', { class: 'msg__text', text: m.text }))
        : h('li', { class: 'msg' }, h('span', { class: 'msg__user', text: m.user.username }), ' ', h('span', { class: 'msg__text', text: m.text }));
    el.dataset.offsetMs = String(m.offset_ms);
    el.dataset.messageId = m.id;
    return el;
  }

  async function loadAhead(atMs) {
    if (!source || done || loading) return loading;
    const last = messages.length ? messages[messages.length - 1].offset_ms : -1;
    if (last > atMs + LOOKAHEAD_MS) return null;
    const mine = generation;
    loading = (async () => {
      try {
        const params = new URLSearchParams({ from_ms: String(nextFrom), limit: String(PAGE) });
        const body = await api(`/api/streams/${encodeURIComponent(source.streamId)}/broadcasts/${encodeURIComponent(source.broadcastId)}/chat?${params}`);
        if (mine !== generation) return;
        messages = messages.concat(body.messages);
        done = body.next_from_ms === null || body.next_from_ms === undefined;
        if (!done) nextFrom = body.next_from_ms;
      } catch {
        // The replay is an extra (a deleted broadcast has none); the video plays on.
        done = true;
      } finally {
        loading = null;
      }
    })();
    await loading;
    if (mine === generation) draw();
    return null;
  }

  /** Shows exactly the messages at or before the playhead: appends as time passes, redraws after a jump back. */
  function draw() {
    if (!source) return;
    const atMs = source.baseMs + video.currentTime * 1000;
    let count = 0;
    while (count < messages.length && messages[count].offset_ms <= atMs) count += 1;
    if (count < shown) {
      list.replaceChildren(...messages.slice(0, count).map(item));
    } else if (count > shown) {
      for (const m of messages.slice(shown, count)) list.appendChild(item(m));
    }
    if (count !== shown) list.lastElementChild?.scrollIntoView({ block: 'end' });
    shown = count;
    loadAhead(atMs);
  }

  video.addEventListener('timeupdate', draw);
  video.addEventListener('seeked', draw);

  return {
    start(streamId, broadcastId, baseMs = 0) {
      generation += 1;
      source = { streamId, broadcastId, baseMs };
      messages = [];
      nextFrom = Math.max(0, Math.floor(baseMs));
      done = false;
      loading = null;
      shown = 0;
      list.replaceChildren();
      onActive(true);
      loadAhead(baseMs);
    },
    stop() {
      generation += 1;
      source = null;
      list.replaceChildren();
      onActive(false);
    },
  };
}
