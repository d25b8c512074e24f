// The player: the stream live, or one of its past broadcasts as video on demand. hls.js (the light build, vendored
// from npm into /vendor/ by scripts/build-worker) on browsers with Media Source Extensions, the browser's own HLS
// elsewhere (Safari). The chat room's `status` frames decide live or offline; right after going live the first
// segments may not be up yet, so network errors are retried quietly for as long as the room says the stream is live.
//
// hls.js transmuxes MPEG-TS in a Web Worker. By default it builds that worker from a blob: URL, which our
// Content-Security-Policy (worker-src 'self') refuses; `workerPath` makes it load the same code from our own origin
// instead (/vendor/hls.worker.js, copied by the build beside hls.light.min.js).

import { byId } from '../dom.js';
import { dateTime } from '../format.js';

const RETRY_MS = 3000;
/** The viewer's quality choice, per browser: 'auto' or a rendition's height ('480'). */
const QUALITY_KEY = 'sunnylive.quality';
const WORKER_PATH = '/vendor/hls.worker.js';
/** Media (decode) errors recovered within this window count towards giving up. */
const MEDIA_ERROR_WINDOW_MS = 60000;
/** Recoveries tried per window: a plain recover, then one with the audio codec swapped, then we say so and stop. */
const MEDIA_RECOVERIES = 2;

const COMMON_CONFIG = {
  enableWorker: true,
  workerPath: WORKER_PATH,
  backBufferLength: 30,
};

const LIVE_CONFIG = {
  ...COMMON_CONFIG,
  // Start three segments behind the newest until the first playlist says how long they are (then `holdBack`).
  liveSyncDurationCount: 3,
  // After a stall, play up to 1.5x until back at that distance from the live edge, instead of staying behind...
  maxLiveSyncPlaybackRate: 1.5,
  // ...and if the stall left us more than six segments behind, jump to the live edge at once.
  liveMaxLatencyDurationCount: 6,
};

/**
 * How far behind the live edge to play, from the playlist's target duration (the origin's latency mode): one
 * segment plus 3 s for its upload and the playlist's cache to vary, at most the usual three segments. 1-s
 * segments: 3 s; 2-s segments: 5 s rather than 6. After a stall hls.js itself adds a second per stall (up to one
 * segment), so a slow line settles further back instead of stalling again.
 */
export function holdBack(targetDuration) {
  return Math.min(3 * targetDuration, targetDuration + 3);
}

const VOD_CONFIG = {
  ...COMMON_CONFIG,
  startPosition: 0,
};

/**
 * `hlsUrl` is the stream's live playlist. `onModeChange(mode, broadcast)` is told when the player switches between
 * 'live', 'vod' (with the broadcast) and 'offline'.
 */
export function createPlayer(hlsUrl, { onModeChange = () => {} } = {}) {
  const video = byId('video');
  const overlay = byId('player-overlay');
  const title = byId('player-title');
  const text = byId('player-text');
  const retry = byId('player-retry');
  const unmute = byId('unmute');
  const root = byId('player');
  const bar = byId('player-bar');
  const liveBadge = byId('player-live');
  const delayText = byId('player-delay');
  const goLive = byId('player-golive');
  const qualityLabel = byId('player-quality-label');
  const quality = byId('player-quality');

  let live = false;
  let decided = false;
  let mode = 'offline';
  let vod = null; // the broadcast playing as video on demand
  let hls = null;
  let retryTimer = null;
  let mediaErrors = [];
  let offlineText = 'The streamer is not live right now. The chat is still open, so say hi!';

  function showCard(state, heading, sentence, { canRetry = false } = {}) {
    root.dataset.state = state;
    overlay.hidden = false;
    title.textContent = heading;
    text.textContent = sentence;
    retry.hidden = !canRetry;
  }

  function hideCard() {
    root.dataset.state = 'playing';
    overlay.hidden = true;
    retry.hidden = true;
  }

  function setMode(next, broadcast = null) {
    mode = next;
    vod = broadcast;
    root.dataset.mode = next;
    video.setAttribute('aria-label', next === 'vod' && broadcast ? `Past broadcast of ${dateTime(broadcast.started_at)}` : 'Live video');
    onModeChange(next, broadcast);
  }

  function teardown() {
    clearTimeout(retryTimer);
    retryTimer = null;
    bar.hidden = true;
    qualityLabel.hidden = true;
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
      if (mode === 'live' && live) start();
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

  function giveUp() {
    teardown();
    showCard('error', "This video can't be played here", 'Your browser kept failing to decode it. Try again, reload the page, or use another browser.', {
      canRetry: true,
    });
  }

  /** A fatal decode error: recover a bounded number of times, then say so instead of looping forever. */
  function onMediaError() {
    const now = Date.now();
    mediaErrors = mediaErrors.filter((t) => now - t < MEDIA_ERROR_WINDOW_MS);
    if (mediaErrors.length >= MEDIA_RECOVERIES) {
      giveUp();
      return;
    }
    mediaErrors.push(now);
    // The second try swaps the audio codec hls.js assumed (HE-AAC vs AAC-LC), the usual culprit.
    if (mediaErrors.length === 2) hls.swapAudioCodec();
    hls.recoverMediaError();
  }

  function savedQuality() {
    try {
      return localStorage.getItem(QUALITY_KEY) || 'auto';
    } catch {
      return 'auto';
    }
  }

  /** Pins the rendition of that height, or lets hls.js's ABR choose ('auto' or a height this stream lacks). */
  function applyQuality(choice) {
    if (!hls) return;
    const index = choice === 'auto' ? -1 : hls.levels.findIndex((l) => String(l.height) === choice);
    hls.currentLevel = index;
    quality.value = index === -1 ? 'auto' : choice;
  }

  /** The menu: Auto plus each rendition by height, highest first; shown when there is a choice. */
  function setupQuality() {
    const heights = [...new Set(hls.levels.map((l) => l.height).filter((h) => h > 0))].sort((a, b) => b - a);
    quality.replaceChildren(new Option('Auto', 'auto'), ...heights.map((h) => new Option(`${h}p`, String(h))));
    qualityLabel.hidden = heights.length < 2;
    bar.hidden = false;
    applyQuality(savedQuality());
  }

  /** Live: how far behind the streamer's camera the picture is (PROGRAM-DATE-TIME), and a way back to the edge. */
  function showDelay() {
    const live = hls && mode === 'live';
    liveBadge.hidden = !live;
    if (!live) {
      goLive.hidden = true;
      return;
    }
    const date = hls.playingDate;
    const delay = date ? (Date.now() - date.getTime()) / 1000 : hls.latency;
    delayText.textContent = Number.isFinite(delay) && delay > 0 ? `${delay.toFixed(1)} s` : '';
    const target = hls.targetLatency || 6;
    goLive.hidden = !(hls.latency > target + 3);
  }

  /** Loads `url` into a fresh hls.js (or the native player) with `config`; `onNetworkFatal` decides what a dead network means. */
  function load(url, config, onNetworkFatal) {
    teardown();
    const Hls = window.Hls;
    if (Hls && Hls.isSupported()) {
      hls = new Hls(config);
      hls.on(Hls.Events.MANIFEST_PARSED, () => {
        setupQuality();
        play();
      });
      if (config === LIVE_CONFIG) {
        let held = false;
        hls.on(Hls.Events.LEVEL_LOADED, (_event, data) => {
          if (held || !data.details.live) return;
          held = true;
          hls.targetLatency = holdBack(data.details.targetduration);
        });
      }
      hls.on(Hls.Events.ERROR, (_event, data) => {
        if (!data.fatal) return;
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR) onMediaError();
        else onNetworkFatal();
      });
      hls.loadSource(url);
      hls.attachMedia(video);
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = url;
      video.addEventListener('loadedmetadata', play, { once: true });
      video.addEventListener('error', onNetworkFatal, { once: true });
    } else {
      showCard('error', 'This browser cannot play this video', 'Try a recent Chrome, Firefox, Edge or Safari.');
    }
  }

  function start() {
    setMode('live');
    showCard('loading', 'Starting the stream…', 'Hang tight, the first seconds of video are on their way.');
    load(hlsUrl, LIVE_CONFIG, () => {
      showCard('loading', 'Waiting for video…', 'The stream is live; the picture will appear in a moment.');
      retrySoon();
    });
  }

  function startVod(broadcast) {
    setMode('vod', broadcast);
    showCard('loading', 'Loading the broadcast…', dateTime(broadcast.started_at));
    load(broadcast.playlist_url, VOD_CONFIG, () => {
      teardown();
      showCard('error', "This broadcast can't be loaded", 'It may have been deleted, or the connection dropped.', { canRetry: true });
    });
  }

  function showOffline() {
    teardown();
    setMode('offline');
    unmute.hidden = true;
    showCard('offline', 'The stream is offline', offlineText);
  }

  quality.addEventListener('change', () => {
    try {
      localStorage.setItem(QUALITY_KEY, quality.value);
    } catch {
      // Storage refused (private mode): the choice holds for this page only.
    }
    applyQuality(quality.value);
  });
  goLive.addEventListener('click', () => {
    if (hls && Number.isFinite(hls.liveSyncPosition)) video.currentTime = hls.liveSyncPosition;
  });
  setInterval(showDelay, 1000);

  retry.addEventListener('click', () => {
    mediaErrors = [];
    if (mode === 'vod' && vod) startVod(vod);
    else if (live) start();
    else showOffline();
  });
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
      mediaErrors = [];
      // Going live ends any replay: viewers came for the stream.
      if (live) start();
      else showOffline();
    },
    /** Plays a past broadcast from its start, with the normal seek controls (only while the stream is offline). */
    playBroadcast(broadcast) {
      if (live) return;
      mediaErrors = [];
      startVod(broadcast);
      video.focus();
    },
    /** The sentence on the offline card (the page says whether past broadcasts are below). */
    setOfflineText(sentence) {
      offlineText = sentence;
      if (mode === 'offline' && root.dataset.state === 'offline') text.textContent = sentence;
    },
    showMissing() {
      teardown();
      showCard('error', 'Stream not found', '');
    },
    /** For diagnostics and the browser suite: what is playing and, live, how far behind the edge (hls.js). */
    get mode() {
      return mode;
    },
    get latency() {
      return hls && mode === 'live' ? hls.latency : null;
    },
    /** Live: seconds from the wall-clock time of the frame on screen (PROGRAM-DATE-TIME) to now, as the bar shows. */
    get delay() {
      const date = hls && mode === 'live' ? hls.playingDate : null;
      return date ? (Date.now() - date.getTime()) / 1000 : null;
    },
    /** The rendition playing (its height and master BANDWIDTH) and whether hls.js chooses it (Auto) or the viewer pinned it. */
    get quality() {
      if (!hls) return null;
      const level = hls.levels[hls.currentLevel];
      return {
        auto: hls.autoLevelEnabled,
        height: level ? level.height : null,
        bandwidth: level ? level.bitrate : null,
        levels: hls.levels.length,
      };
    },
  };
}
