// The live player: hls.js (vendored from npm into /vendor/hls.min.js by the build) on browsers with Media Source
// Extensions, the browser's own HLS elsewhere (Safari). The chat room's `status` frames decide live or offline;
// right after going live the origin may not have written its first segments yet, so network errors are retried
// quietly for as long as the room says the stream is live.

import { byId } from '../dom.js';

const RETRY_MS = 3000;

export function createPlayer(hlsUrl) {
  const video = byId('video');
  const overlay = byId('player-overlay');
  const title = byId('player-title');
  const text = byId('player-text');
  const unmute = byId('unmute');
  const root = byId('player');

  let live = false;
  let decided = false;
  let hls = null;
  let retryTimer = null;

  function showCard(state, heading, sentence) {
    root.dataset.state = state;
    overlay.hidden = false;
    title.textContent = heading;
    text.textContent = sentence;
  }

  function hideCard() {
    root.dataset.state = 'playing';
    overlay.hidden = true;
  }

  function teardown() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (hls) {
      hls.destroy();
      hls = null;
    }
    video.pause();
    video.removeAttribute('src');
    video.load();
  }

  function retrySoon() {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => {
      if (live) start();
    }, RETRY_MS);
  }

  async function play() {
    try {
      await video.play();
      hideCard();
      unmute.hidden = !video.muted;
    } catch {
      // Autoplay was refused even muted (rare): let the person start it.
      showCard('paused', 'Press play to watch', 'Your browser paused autoplay.');
      overlay.hidden = true;
      video.controls = true;
    }
  }

  function start() {
    teardown();
    showCard('loading', 'Starting the stream…', 'Hang tight, the first seconds of video are on their way.');
    const Hls = window.Hls;
    if (Hls && Hls.isSupported()) {
      // No Web Worker: hls.js would build it from a blob: URL, which our Content-Security-Policy does not allow.
      hls = new Hls({ enableWorker: false, liveSyncDurationCount: 3, backBufferLength: 30 });
      hls.on(Hls.Events.MANIFEST_PARSED, () => play());
      hls.on(Hls.Events.ERROR, (_event, data) => {
        if (!data.fatal) return;
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
          hls.recoverMediaError();
          return;
        }
        showCard('loading', 'Waiting for video…', 'The stream is live; the picture will appear in a moment.');
        retrySoon();
      });
      hls.loadSource(hlsUrl);
      hls.attachMedia(video);
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = hlsUrl;
      video.addEventListener('loadedmetadata', play, { once: true });
      video.addEventListener('error', () => live && retrySoon(), { once: true });
    } else {
      showCard('error', 'This browser cannot play live video', 'Try a recent Chrome, Firefox, Edge or Safari.');
    }
  }

  unmute.addEventListener('click', () => {
    video.muted = false;
    unmute.hidden = true;
    video.play().catch(() => {});
  });
  video.addEventListener('volumechange', () => {
    unmute.hidden = !video.muted || overlay.hidden === false;
  });

  return {
    setLive(next) {
      // Welcome and status frames repeat the state on every reconnect: restarting a playing stream would stutter.
      if (decided && next === live) return;
      decided = true;
      live = next;
      if (live) {
        start();
      } else {
        teardown();
        unmute.hidden = true;
        showCard('offline', 'The stream is offline', 'The streamer is not live right now. The chat is still open, so say hi!');
      }
    },
    showMissing() {
      teardown();
      showCard('error', 'Stream not found', '');
    },
  };
}
