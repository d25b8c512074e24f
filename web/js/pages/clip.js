// A clip's page /clip/{id}: the clip plays on a loop (hls.js like the watch page's player, or the browser's own
// HLS), with its title, who clipped it and from which stream. Its creator and the stream's owner may delete it. The
// link-preview tags in the head are filled in by the Worker (bots run no script).

import { api, ApiError, describeError } from '../api.js';
import { byId, idFromPath } from '../dom.js';
import { initHeader } from '../session.js';
import { createReplay } from '../watch/replay.js';

function showMissing() {
  byId('clip').hidden = true;
  byId('clip-missing').hidden = false;
  document.title = 'Clip not found · Sunnylive';
}

function play(video, url) {
  const start = () =>
    video.play().catch(() => {
      // Autoplay refused: the controls are there.
    });
  if (window.Hls && window.Hls.isSupported()) {
    const hls = new window.Hls({ enableWorker: true, workerPath: '/vendor/hls.worker.js', startPosition: 0 });
    hls.loadSource(url);
    hls.attachMedia(video);
    hls.on(window.Hls.Events.MANIFEST_PARSED, start);
    return hls;
  }
  video.src = url;
  start();
  return null;
}

async function main() {
  const clipId = idFromPath(2);
  const userPromise = initHeader();
  if (!clipId) {
    showMissing();
    return;
  }
  const video = byId('video');
  // The Worker names the playlist in the page itself: playback starts before the API is asked anything.
  const early = document.querySelector('meta[name="sunnylive-playlist"]');
  let hls = early ? play(video, early.content) : null;
  let clip;
  try {
    clip = (await api(`/api/clips/${encodeURIComponent(clipId)}`)).clip;
  } catch (err) {
    if (hls) hls.destroy();
    if (err instanceof ApiError && err.status === 404) showMissing();
    else byId('clip-title').textContent = describeError(err);
    return;
  }
  byId('clip-title').textContent = clip.title;
  byId('clip-meta').textContent = `${Math.round(clip.duration_seconds)} s, clipped by ${clip.creator.username}`;
  const streamLink = byId('clip-stream');
  streamLink.href = `/s/${encodeURIComponent(clip.stream_id)}`;
  if (clip.thumbnail_url) video.poster = clip.thumbnail_url;
  if (!early) hls = play(video, clip.playlist_url);
  // For the browser suite: what is playing.
  window.sunnyliveClip = { clip, hls };
  // The chat as it was during the clip's moment, in step with the video (none once its broadcast is gone).
  createReplay({ list: byId('replay-list'), video }).start(clip.stream_id, clip.broadcast_id, clip.start_seconds * 1000);

  byId('clip-copy').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(new URL(clip.page_url, location.origin).href);
      byId('clip-copy').textContent = 'Link copied';
    } catch {
      byId('clip-copy').textContent = location.href;
    }
  });

  let stream = null;
  try {
    stream = (await api(`/api/streams/${encodeURIComponent(clip.stream_id)}`)).stream;
    streamLink.textContent = stream.title;
  } catch {
    // The stream's name is a nicety.
  }
  const user = await userPromise;
  const mayDelete = user && (user.id === clip.creator.id || (stream && stream.owner && stream.owner.id === user.id));
  const del = byId('clip-delete');
  del.hidden = !mayDelete;
  del.addEventListener('click', async () => {
    if (!window.confirm('Delete this clip for everyone?')) return;
    del.disabled = true;
    try {
      await api(`/api/clips/${encodeURIComponent(clip.id)}`, { method: 'DELETE' });
      location.href = `/s/${encodeURIComponent(clip.stream_id)}`;
    } catch (err) {
      byId('clip-error').textContent = describeError(err);
      del.disabled = false;
    }
  });
}

main();
