// The watch page's past broadcasts: while the stream is offline, its earlier broadcasts are offered under the
// player (thumbnail, date, length); choosing one plays it from its start in the same player, with normal seeking.
// When the stream goes live the list hides and the player switches back to the live stream.

import { broadcastName, broadcastSummary, fetchBroadcasts } from '../broadcasts.js';
import { byId, h } from '../dom.js';

const PAGE = 6;
/** The last segments of a broadcast that just ended are still being uploaded: look again after this long. */
const SETTLE_MS = 10000;
const OFFLINE = 'The streamer is not live right now. The chat is still open, so say hi!';
const OFFLINE_WITH_PAST = 'The streamer is not live right now. Catch up on a past broadcast below, or say hi in the chat!';

export function createPastBroadcasts({ streamId, player, wanted = null }) {
  const section = byId('past');
  const list = byId('past-list');
  const more = byId('past-more');
  const note = byId('past-note');
  let cursor = null;
  let offline = false;
  let decided = false;
  let settleTimer = null;
  let playing = null;
  let wantedId = wanted;

  function markPlaying() {
    for (const button of list.querySelectorAll('.broadcast__play')) {
      button.setAttribute('aria-current', String(button.dataset.broadcastId === playing));
    }
    const current = list.querySelector('.broadcast__play[aria-current="true"]');
    note.textContent = current ? `Playing the ${current.dataset.name}.` : '';
  }

  function row(broadcast) {
    const button = h(
      'button',
      {
        class: 'broadcast broadcast__play',
        attrs: { type: 'button', 'aria-label': `Play the ${broadcastName(broadcast)}`, 'aria-current': 'false' },
        data: { broadcastId: broadcast.id, name: broadcastName(broadcast) },
      },
      broadcastSummary(broadcast),
    );
    button.addEventListener('click', () => player.playBroadcast(broadcast));
    return h('li', {}, button);
  }

  /** Adds or refreshes rows by id; rows that stay keep their element, so keyboard focus stays where it was. */
  function render(broadcasts, append) {
    const existing = new Map([...list.querySelectorAll('.broadcast__play')].map((b) => [b.dataset.broadcastId, b.parentElement]));
    const rows = broadcasts.map((b) => {
      const fresh = row(b);
      const old = existing.get(b.id);
      if (!old) return fresh;
      old.firstChild.replaceChildren(...fresh.firstChild.childNodes);
      return old;
    });
    if (append) {
      for (const li of rows) if (!li.isConnected) list.appendChild(li);
    } else if (rows.length !== list.children.length || rows.some((li, i) => list.children[i] !== li)) {
      list.replaceChildren(...rows);
    }
    markPlaying();
  }

  async function load({ append = false } = {}) {
    more.disabled = true;
    try {
      const page = await fetchBroadcasts(streamId, { limit: PAGE, cursor: append ? cursor : null });
      if (!offline) return;
      // Only finished broadcasts with video in them; the one that just ended shows once it is closed.
      const ready = page.broadcasts.filter((b) => !b.live && b.segment_count > 0);
      render(ready, append);
      cursor = page.next_cursor;
      more.hidden = !cursor;
      const any = list.children.length > 0;
      section.hidden = !any;
      player.setOfflineText(any ? OFFLINE_WITH_PAST : OFFLINE);
      if (wantedId) {
        const match = ready.find((b) => b.id === wantedId);
        wantedId = null;
        if (match) player.playBroadcast(match);
      }
    } catch {
      // Past broadcasts are an extra; the page works without them.
    } finally {
      more.disabled = false;
    }
  }

  more.addEventListener('click', () => load({ append: true }));

  return {
    setLive(live) {
      // Status frames repeat on every chat reconnect; only a change means something.
      if (offline === !live && decided) return;
      decided = true;
      offline = !live;
      clearTimeout(settleTimer);
      if (live) {
        section.hidden = true;
        wantedId = null;
        return;
      }
      load();
      settleTimer = setTimeout(() => load(), SETTLE_MS);
    },
    /** The player switched to live, a broadcast or offline. */
    onModeChange(mode, broadcast) {
      playing = mode === 'vod' && broadcast ? broadcast.id : null;
      markPlaying();
    },
  };
}
