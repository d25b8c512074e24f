// The watch page /s/{id}: the stream's details, the player (live, or offline with past broadcasts to replay, as the
// chat room says), the chat, the donate panel and the top supporters. `?broadcast=<id>` (Studio's "Watch" links)
// starts that past broadcast when the stream is offline.

import { api, ApiError, describeError } from '../api.js';
import { byId, fill, h, idFromPath } from '../dom.js';
import { liveFor, rupiah, viewers as viewersText } from '../format.js';
import { initHeader, initial } from '../session.js';
import { createChat } from '../watch/chat.js';
import { createDonate } from '../watch/donate.js';
import { createPastBroadcasts } from '../watch/past.js';
import { createPlayer } from '../watch/player.js';
import { createReplay } from '../watch/replay.js';

/** What the watch page's Clip button takes: the last half minute of the live stream. */
const CLIP_SECONDS = 30;

function showMissing() {
  byId('watch').hidden = true;
  byId('watch-missing').hidden = false;
  document.title = 'Stream not found · Sunnylive';
}

function renderStatus(stream, status) {
  const badge = byId('stream-status');
  const live = status === 'live';
  badge.className = `badge ${live ? 'badge--live' : 'badge--offline'}`;
  badge.textContent = live ? 'Live' : 'Offline';
  badge.title = live ? liveFor(stream.live_since) : '';
}

async function loadLeaderboard(streamId) {
  try {
    const body = await api(`/api/streams/${encodeURIComponent(streamId)}/leaderboard`);
    const top = Array.isArray(body.top) ? body.top : [];
    const box = byId('watch-leaderboard');
    box.hidden = top.length === 0;
    fill(
      byId('watch-leaderboard-list'),
      top.slice(0, 5).map((row) =>
        h('li', { class: 'leaderboard__row' }, h('span', { class: 'leaderboard__name', text: row.donor }), h('span', { class: 'leaderboard__total', text: rupiah(row.total) })),
      ),
    );
  } catch {
    // The leaderboard is a nicety; the page works without it.
  }
}

/** The "Clip" button: while the stream is live, a signed-in viewer clips its last 30 s; returns what shows it. */
function createClipButton(streamId, user) {
  const button = byId('clip-button');
  const status = byId('clip-status');
  button.addEventListener('click', async () => {
    button.disabled = true;
    status.textContent = 'Clipping…';
    try {
      const { clip } = await api(`/api/streams/${encodeURIComponent(streamId)}/clips`, {
        method: 'POST',
        body: { duration_seconds: CLIP_SECONDS },
      });
      status.replaceChildren('Clip made: ', h('a', { attrs: { href: clip.page_url }, text: clip.title }));
    } catch (err) {
      status.textContent = describeError(err);
    } finally {
      button.disabled = false;
    }
  });
  return (live) => {
    button.hidden = !(user && live);
  };
}

async function main() {
  const streamId = idFromPath(2);
  const userPromise = initHeader();
  if (!streamId) {
    showMissing();
    return;
  }
  let stream;
  try {
    stream = (await api(`/api/streams/${encodeURIComponent(streamId)}`)).stream;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      showMissing();
    } else {
      byId('stream-title').textContent = describeError(err);
    }
    return;
  }
  document.title = `${stream.title} · Sunnylive`;
  byId('stream-title').textContent = stream.title;
  const owner = (stream.owner && stream.owner.username) || '';
  byId('stream-owner').textContent = owner;
  byId('owner-avatar').textContent = initial(owner);
  byId('stream-description').textContent = stream.description || '';
  byId('stream-description').hidden = !stream.description;
  byId('stream-viewers').textContent = viewersText(stream.viewers);
  renderStatus(stream, stream.status);

  let past = null;
  // While a past broadcast plays, the chat panel replays its chat in step with the video.
  const replay = createReplay({
    list: byId('replay-list'),
    video: byId('video'),
    onActive(active) {
      byId('replay-scroll').hidden = !active;
      byId('chat-scroll').hidden = active;
    },
  });
  const player = createPlayer(stream.hls_url, {
    onModeChange: (mode, broadcast) => {
      if (mode === 'vod' && broadcast) replay.start(streamId, broadcast.id);
      else replay.stop();
      if (past) past.onModeChange(mode, broadcast);
    },
  });
  past = createPastBroadcasts({
    streamId,
    player,
    wanted: new URLSearchParams(location.search).get('broadcast'),
  });
  // For diagnostics (and the browser suite, which reads the live latency): what the player is doing.
  window.sunnylivePlayer = player;
  let clipLive = null;
  const setLive = (live) => {
    if (clipLive) clipLive(live);
    player.setLive(live);
    past.setLive(live);
  };
  setLive(stream.status === 'live');

  const user = await userPromise;
  const clipButton = createClipButton(streamId, user);
  const isOwner = Boolean(user && stream.owner && user.id === stream.owner.id);
  if (isOwner) {
    // Donating to yourself makes no sense; the panel keeps the supporters list and points to the studio.
    byId('donate-form').hidden = true;
    byId('donate-lead').hidden = true;
    byId('donate-own').hidden = false;
  } else {
    createDonate({ streamId, user });
  }
  clipLive = clipButton;
  clipButton(stream.status === 'live');
  loadLeaderboard(streamId);
  let leaderboardTimer = null;

  const chat = createChat({
    streamId,
    ownerId: stream.owner && stream.owner.id,
    user,
    onStatus(status, { initial: first }) {
      if (status === 'live' && !first) stream.live_since = new Date().toISOString();
      renderStatus(stream, status);
      setLive(status === 'live');
    },
    onDonation() {
      // The board is computed from paid donations; give the write a moment, then refresh it once.
      clearTimeout(leaderboardTimer);
      leaderboardTimer = setTimeout(() => loadLeaderboard(streamId), 1500);
    },
    onPresence(n) {
      byId('stream-viewers').textContent = viewersText(n);
      chat.setViewers(n);
    },
  });
  // Donations change the leaderboard; refresh it now and then rather than on every frame.
  setInterval(() => loadLeaderboard(streamId), 60000);
}

main();
