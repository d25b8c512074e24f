// The studio: the signed-in streamer's channels (GET /api/me/streams), creating one, and per channel the RTMP
// server URL and stream key (kept out of the DOM until "Show" is pressed, copyable, rotatable after a
// confirmation) with the encoder settings the origin expects, live status and the latest thumbnail, the OBS overlay
// link, simulcast outputs (outputs.js), past broadcasts (watchable, deletable after a confirmation), donations
// received with their total, and the leaderboard.

import { api, ApiError, describeError } from '../api.js';
import { confirmAction, copyButton } from '../dialog.js';
import { broadcastName, broadcastSummary, fetchBroadcasts } from '../broadcasts.js';
import { byId, fill, h, warmHueFor } from '../dom.js';
import { clearErrors, showError, showFieldErrors } from '../form-errors.js';
import { ago, dateTime, durationSince, rupiah, spokenDuration, viewers } from '../format.js';
import { outputsBox } from '../outputs.js';
import { initHeader } from '../session.js';
import { setThumbnail, thumbnailImage } from '../thumbnail.js';

const STATUS_POLL_MS = 10000;
const cards = new Map();

function statusBadge(stream) {
  const live = stream.status === 'live';
  return h('span', { class: `badge ${live ? 'badge--live' : 'badge--offline'}`, text: live ? 'Live' : 'Offline' });
}

/** Beside the badge: "for 12 min · 3 viewers" (the badge already says Live). */
function liveDetail(stream) {
  if (stream.status !== 'live') return '';
  const since = durationSince(stream.live_since);
  const when = !since || since === 'just now' ? 'started just now' : `for ${since}`;
  return `${when} · ${viewers(stream.viewers)}`;
}

/** The key box: a masked value until shown; the secret is only fetched and kept in this closure. */
function keyBox(stream, initialKey) {
  let key = initialKey ? initialKey.stream_key : null;
  let rtmpUrl = initialKey ? initialKey.rtmp_url : null;
  // Present only when the origin offers RTMPS: then it is the Server to use (the key travels encrypted), and plain
  // RTMP is shown below it as the fallback.
  let rtmpsUrl = initialKey ? initialKey.rtmps_url || null : null;
  let revealed = Boolean(initialKey);

  const serverValue = h('code', { class: 'secret__value mono', text: rtmpUrl || 'Loading…', data: { role: 'rtmp-url' } });
  const secureServerValue = h('code', { class: 'secret__value mono', text: rtmpsUrl || '', data: { role: 'rtmps-url' } });
  const secureServerRow = h(
    'div',
    { class: 'secret__row' },
    h('span', { class: 'secret__label', text: 'Server' }),
    secureServerValue,
    copyButton(() => rtmpsUrl || '', 'Copy'),
  );
  const serverLabel = h('span', { class: 'secret__label', text: 'Server' });
  const keyValue = h('code', { class: 'secret__value mono', data: { role: 'stream-key' } });
  const showButton = h('button', { class: 'btn btn--ghost btn--small', attrs: { type: 'button', 'aria-pressed': 'false' } });
  const rotateButton = h('button', { class: 'btn btn--ghost btn--small btn--danger-text', text: 'Rotate key', attrs: { type: 'button' } });
  const message = h('p', { class: 'secret__message', attrs: { role: 'status' } });

  function paint() {
    keyValue.textContent = revealed && key ? key : '•••••••••••••••••••••••';
    keyValue.classList.toggle('secret__value--masked', !revealed);
    showButton.textContent = revealed ? 'Hide' : 'Show key';
    showButton.setAttribute('aria-pressed', String(revealed));
    serverValue.textContent = rtmpUrl || '—';
    secureServerValue.textContent = rtmpsUrl || '';
    secureServerRow.hidden = !rtmpsUrl;
    serverLabel.textContent = rtmpsUrl ? 'Server without TLS (fallback)' : 'Server';
  }

  async function fetchKey() {
    const body = await api(`/api/streams/${encodeURIComponent(stream.id)}/key`);
    key = body.stream_key;
    rtmpUrl = body.rtmp_url;
    rtmpsUrl = body.rtmps_url || null;
  }

  showButton.addEventListener('click', async () => {
    if (revealed) {
      revealed = false;
      paint();
      return;
    }
    try {
      if (!key) await fetchKey();
      revealed = true;
      message.textContent = 'Keep this key secret: anyone with it can stream to your channel.';
    } catch (err) {
      message.textContent = describeError(err);
    }
    paint();
  });

  rotateButton.addEventListener('click', async () => {
    const ok = await confirmAction({
      title: 'Rotate the stream key?',
      body: 'The old key stops working now. If you are live with it, your broadcast is cut off within a minute and OBS needs the new key.',
      confirmLabel: 'Rotate key',
    });
    if (!ok) return;
    rotateButton.disabled = true;
    try {
      const body = await api(`/api/streams/${encodeURIComponent(stream.id)}/key`, { method: 'POST' });
      key = body.stream_key;
      rtmpUrl = body.rtmp_url;
      rtmpsUrl = body.rtmps_url || null;
      revealed = true;
      message.textContent = 'New key ready. Update it in OBS.';
    } catch (err) {
      message.textContent = describeError(err);
    } finally {
      rotateButton.disabled = false;
    }
    paint();
  });

  const copyKey = copyButton(async () => {
    // Copying before the key was ever shown fetches it first, still without putting it in the page.
    if (!key) await fetchKey();
    return key || '';
  }, 'Copy key');

  paint();
  if (!rtmpUrl) {
    // The server URL is not secret, but it comes with the key; fetch once and keep the key masked.
    fetchKey()
      .then(paint)
      .catch(() => {
        serverValue.textContent = 'Unavailable';
      });
  }

  return h(
    'div',
    { class: 'secret' },
    secureServerRow,
    h('div', { class: 'secret__row' }, serverLabel, serverValue, copyButton(() => rtmpUrl || '', 'Copy')),
    h('div', { class: 'secret__row' }, h('span', { class: 'secret__label', text: 'Stream key' }), keyValue, h('span', { class: 'secret__buttons' }, showButton, copyKey, rotateButton)),
    message,
  );
}

/**
 * What nginx-origin does with the stream: it copies the video as it comes (no transcoding) and cuts HLS segments at
 * keyframes, so the encoder's settings are what viewers get. Segments of ~2 s need a keyframe every 2 s.
 */
function obsSettings() {
  const rows = [
    ['Encoder', 'H.264 (x264 or hardware) video, AAC audio'],
    ['Keyframe interval', '2 s (OBS: Output → Streaming → Keyframe Interval "2")'],
    ['Rate control', 'CBR, e.g. 2,500-6,000 Kbps for 720p-1080p'],
    ['Audio', 'AAC, 128-160 Kbps, 44.1 or 48 kHz'],
  ];
  return h(
    'details',
    { class: 'obs-settings' },
    h('summary', { class: 'obs-settings__summary', text: 'Recommended OBS output settings' }),
    h(
      'dl',
      { class: 'obs-settings__list' },
      rows.map(([name, value]) => [h('dt', { text: name }), h('dd', { text: value })]),
    ),
    h('p', {
      class: 'studio-card__hint',
      text: 'The video is passed to viewers as you send it: other codecs (HEVC, AV1, Opus) will not play, and a longer keyframe interval means longer delay and choppy seeking.',
    }),
  );
}

/** Clips viewers made of a stream, newest first: each links to its page (where the owner may delete it). */
function clipsBox(stream) {
  const list = h('ol', { class: 'broadcast-list', data: { role: 'clips' } });
  const more = h('button', { class: 'btn btn--ghost btn--small load-more', text: 'Show more', attrs: { type: 'button', hidden: true } });
  let cursor = null;
  function row(clip) {
    const thumb = h('span', { class: 'broadcast__thumb', attrs: { 'aria-hidden': 'true' } }, clip.thumbnail_url ? thumbnailImage(clip.thumbnail_url, 'broadcast__img') : null);
    thumb.style.setProperty('--hue', String(warmHueFor(stream.id)));
    return h(
      'li',
      { class: 'broadcast broadcast--row', data: { clipId: clip.id } },
      h(
        'a',
        { class: 'broadcast__summary', attrs: { href: clip.page_url } },
        thumb,
        // Title and details on lines of their own; the hidden comma keeps them apart where the row is read as
        // text (a screen reader's link name, a copy), not "Clip me30 s".
        h(
          'span',
          { class: 'broadcast__text' },
          h('span', { class: 'broadcast__date', text: clip.title }),
          h('span', { class: 'visually-hidden', text: ', ' }),
          h('span', { class: 'broadcast__duration' }, `${Math.round(clip.duration_seconds)} s by ${clip.creator.username}, `, h('time', { text: dateTime(clip.created_at), attrs: { datetime: clip.created_at } })),
        ),
      ),
    );
  }
  async function load(append) {
    try {
      const params = new URLSearchParams({ limit: '5' });
      if (append && cursor) params.set('cursor', cursor);
      const body = await api(`/api/streams/${encodeURIComponent(stream.id)}/clips?${params}`);
      if (!append) list.replaceChildren();
      for (const clip of body.clips) list.appendChild(row(clip));
      if (!list.children.length) fill(list, h('li', { class: 'empty-note', text: 'When viewers clip your stream, the clips show up here.' }));
      cursor = body.next_cursor || null;
      more.hidden = !cursor;
    } catch {
      // Clips are an extra; the studio works without them.
    }
  }
  more.addEventListener('click', () => load(true));
  load(false);
  return h('div', { class: 'broadcasts' }, list, more);
}

/** Past broadcasts of a stream, newest first, each watchable and deletable (after a confirmation). */
function broadcastsBox(stream) {
  const list = h('ol', { class: 'broadcast-list', data: { role: 'broadcasts' } });
  const more = h('button', { class: 'btn btn--ghost btn--small', text: 'Show more', attrs: { type: 'button', hidden: true } });
  const message = h('p', { class: 'broadcast-list__message', attrs: { role: 'status' } });
  let cursor = null;

  function row(broadcast) {
    const watch = h('a', {
      class: 'btn btn--ghost btn--small',
      text: 'Watch',
      attrs: {
        href: `/s/${encodeURIComponent(stream.id)}?broadcast=${encodeURIComponent(broadcast.id)}`,
        'aria-label': `Watch the ${broadcastName(broadcast)}`,
      },
    });
    const remove = broadcast.live
      ? null
      : h('button', {
          class: 'btn btn--ghost btn--small btn--danger-text',
          text: 'Delete',
          attrs: { type: 'button', 'aria-label': `Delete the ${broadcastName(broadcast)}` },
        });
    const item = h(
      'li',
      { class: 'broadcast broadcast--row', data: { broadcastId: broadcast.id } },
      h('span', { class: 'broadcast__summary' }, broadcastSummary(broadcast)),
      h('span', { class: 'broadcast__actions' }, broadcast.live ? null : watch, remove),
    );
    if (remove) {
      remove.addEventListener('click', async () => {
        const ok = await confirmAction({
          title: 'Delete this broadcast?',
          body: `The ${broadcastName(broadcast)} (${spokenDuration(broadcast.duration_seconds)}) and its video are deleted for good. Nobody can watch it afterwards.`,
          confirmLabel: 'Delete broadcast',
        });
        if (!ok) return;
        remove.disabled = true;
        try {
          await api(`/api/streams/${encodeURIComponent(stream.id)}/broadcasts/${encodeURIComponent(broadcast.id)}`, { method: 'DELETE' });
          // Keep keyboard focus in the list: on the next row's button, or the list's "Show more".
          const next = item.nextElementSibling || item.previousElementSibling;
          item.remove();
          message.textContent = 'Broadcast deleted.';
          if (!list.querySelector('.broadcast')) showNone();
          const target = next && next.querySelector('button, a');
          if (target) target.focus();
        } catch (err) {
          remove.disabled = false;
          message.textContent = describeError(err);
        }
      });
    }
    return item;
  }

  function showNone() {
    if (!list.querySelector('.broadcast')) {
      fill(list, h('li', { class: 'empty-note', text: 'After you stream, your broadcast shows up here, and viewers can catch up on it for a while.' }));
    }
  }

  async function load() {
    more.disabled = true;
    try {
      const page = await fetchBroadcasts(stream.id, { limit: 5, cursor });
      if (!cursor) list.replaceChildren();
      for (const b of page.broadcasts) list.appendChild(row(b));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      showNone();
    } catch (err) {
      fill(list, h('li', { class: 'empty-note empty-note--error', text: describeError(err) }));
    } finally {
      more.disabled = false;
    }
  }

  more.addEventListener('click', load);
  const refresh = () => {
    cursor = null;
    load();
  };
  refresh();
  return { box: h('div', { class: 'broadcasts' }, list, more, message), refresh };
}

function donationsBox(stream) {
  const total = h('span', { class: 'stat__value', text: '…', data: { role: 'total-paid' } });
  const list = h('ol', { class: 'donation-list' });
  const more = h('button', { class: 'btn btn--ghost btn--small', text: 'Show more', attrs: { type: 'button', hidden: true } });
  const board = h('ol', { class: 'leaderboard__list' });
  let cursor = null;

  async function loadDonations() {
    more.disabled = true;
    try {
      const params = new URLSearchParams({ limit: '10' });
      if (cursor) params.set('cursor', cursor);
      const body = await api(`/api/streams/${encodeURIComponent(stream.id)}/donations?${params}`);
      total.textContent = rupiah(body.total_paid || 0);
      if (!cursor) list.replaceChildren();
      for (const d of body.donations || []) {
        list.appendChild(
          h(
            'li',
            { class: `donation-row donation-row--${d.status}` },
            h('span', { class: 'donation-row__amount', text: rupiah(d.amount) }),
            h('span', { class: 'donation-row__donor', text: d.donor || 'Anonymous' }),
            h('span', { class: `badge badge--status badge--${d.status}`, text: d.status }),
            h('time', { class: 'donation-row__when', text: ago(d.paid_at || d.created_at), attrs: { datetime: d.paid_at || d.created_at || '', title: dateTime(d.paid_at || d.created_at) } }),
            d.message ? h('span', { class: 'donation-row__message', text: d.message }) : null,
          ),
        );
      }
      if (list.children.length === 0) list.appendChild(h('li', { class: 'empty-note', text: 'No donations yet. Share your stream!' }));
      cursor = body.next_cursor || null;
      more.hidden = !cursor;
    } catch (err) {
      fill(list, h('li', { class: 'empty-note empty-note--error', text: describeError(err) }));
    } finally {
      more.disabled = false;
    }
  }

  async function loadBoard() {
    try {
      const body = await api(`/api/streams/${encodeURIComponent(stream.id)}/leaderboard`);
      const top = body.top || [];
      fill(
        board,
        top.length
          ? top.map((row, i) =>
              h('li', { class: 'leaderboard__row' }, h('span', { class: 'leaderboard__rank', text: String(i + 1) }), h('span', { class: 'leaderboard__name', text: row.donor }), h('span', { class: 'leaderboard__total', text: rupiah(row.total) })),
            )
          : h('li', { class: 'empty-note', text: 'Your top supporters will show up here.' }),
      );
    } catch (err) {
      fill(board, h('li', { class: 'empty-note empty-note--error', text: describeError(err) }));
    }
  }

  more.addEventListener('click', loadDonations);
  const refresh = () => {
    cursor = null;
    loadDonations();
    loadBoard();
  };
  refresh();

  const box = h(
    'div',
    { class: 'studio-card__money' },
    h(
      'div',
      { class: 'money-col' },
      h('div', { class: 'stat' }, h('span', { class: 'stat__label', text: 'Donations received' }), total),
      list,
      more,
    ),
    h('div', { class: 'money-col' }, h('h4', { class: 'leaderboard__title', text: 'Leaderboard' }), board),
  );
  return { box, refresh };
}

function streamCard(stream, initialKey) {
  const watchUrl = `/s/${encodeURIComponent(stream.id)}`;
  const overlayUrl = `${location.origin}/overlay/${encodeURIComponent(stream.id)}`;
  const status = h('span', { class: 'studio-card__status' }, statusBadge(stream));
  const since = h('span', { class: 'studio-card__since', text: liveDetail(stream) });
  const money = donationsBox(stream);
  const past = broadcastsBox(stream);
  const simulcast = outputsBox(stream);
  const deleteButton = h('button', { class: 'btn btn--ghost btn--small btn--danger-text', text: 'Delete stream', attrs: { type: 'button' } });
  const swatch = h('span', { class: 'studio-card__swatch', attrs: { 'aria-hidden': 'true' } });
  swatch.style.setProperty('--hue', String(warmHueFor(stream.id)));
  const showThumbnail = () => {
    if (!stream.thumbnail_url) return;
    const img = swatch.querySelector('img');
    if (img) setThumbnail(img, stream.thumbnail_url);
    else swatch.appendChild(thumbnailImage(stream.thumbnail_url, 'studio-card__thumb'));
  };
  showThumbnail();

  const card = h(
    'article',
    { class: 'card studio-card', data: { streamId: stream.id }, attrs: { 'aria-label': stream.title } },
    h(
      'header',
      { class: 'studio-card__head' },
      swatch,
      h('div', { class: 'studio-card__titles' }, h('h2', { class: 'studio-card__title', text: stream.title }), h('p', { class: 'studio-card__meta' }, status, ' ', since)),
      h('div', { class: 'studio-card__links' }, h('a', { class: 'btn btn--primary btn--small', text: 'Open watch page', attrs: { href: watchUrl } })),
    ),
    h(
      'section',
      { class: 'studio-card__section' },
      h('h3', { class: 'studio-card__subtitle', text: 'Stream from OBS' }),
      h('p', {
        class: 'studio-card__hint',
        text: 'In OBS: Settings → Stream → Service "Custom", then paste the server and the key. Send H.264 video with AAC audio, CBR, keyframe interval 2 s.',
      }),
      keyBox(stream, initialKey),
      obsSettings(),
    ),
    h(
      'section',
      { class: 'studio-card__section', data: { role: 'simulcast' } },
      h('h3', { class: 'studio-card__subtitle', text: 'Simulcast' }),
      h('p', {
        class: 'studio-card__hint',
        text: 'Go live on other platforms at once: while you stream here, the stream is copied to each output that is on (up to five; switch them on and off any time, also while live).',
      }),
      simulcast.box,
    ),
    h(
      'section',
      { class: 'studio-card__section' },
      h('h3', { class: 'studio-card__subtitle', text: 'Donation alerts overlay' }),
      h('p', { class: 'studio-card__hint', text: 'Add this as a Browser Source in OBS (transparent, 1920×1080 works well).' }),
      h('div', { class: 'secret__row' }, h('code', { class: 'secret__value mono', text: overlayUrl }), copyButton(() => overlayUrl, 'Copy')),
    ),
    h(
      'section',
      { class: 'studio-card__section' },
      h('h3', { class: 'studio-card__subtitle', text: 'Past broadcasts' }),
      h('p', { class: 'studio-card__hint', text: 'Viewers can watch these on your page while you are offline.' }),
      past.box,
    ),
    h('section', { class: 'studio-card__section' }, h('h3', { class: 'studio-card__subtitle', text: 'Clips' }), clipsBox(stream)),
    h('section', { class: 'studio-card__section' }, h('h3', { class: 'studio-card__subtitle', text: 'Supporters' }), money.box),
    h('footer', { class: 'studio-card__foot' }, deleteButton),
  );

  deleteButton.addEventListener('click', async () => {
    const ok = await confirmAction({
      title: `Delete “${stream.title}”?`,
      body: 'The channel, its key and its watch page go away for good. Donations already paid stay in your records.',
      confirmLabel: 'Delete stream',
    });
    if (!ok) return;
    deleteButton.disabled = true;
    try {
      await api(`/api/streams/${encodeURIComponent(stream.id)}`, { method: 'DELETE' });
      cards.delete(stream.id);
      card.remove();
      if (cards.size === 0) showEmpty();
    } catch (err) {
      deleteButton.disabled = false;
      byId('studio-status').textContent = describeError(err);
    }
  });

  cards.set(stream.id, {
    card,
    update(next) {
      const wasLive = stream.status === 'live';
      Object.assign(stream, next);
      fill(status, statusBadge(stream));
      since.textContent = liveDetail(stream);
      card.classList.toggle('studio-card--live', stream.status === 'live');
      showThumbnail();
      if (wasLive !== (stream.status === 'live')) {
        money.refresh();
        past.refresh();
        simulcast.setLive(stream.status === 'live');
      }
    },
  });
  card.classList.toggle('studio-card--live', stream.status === 'live');
  return card;
}

function showEmpty() {
  fill(
    byId('studio-streams'),
    h('div', { class: 'empty-state empty-state--small' }, h('h2', { class: 'empty-state__title', text: 'No streams yet' }), h('p', { class: 'empty-state__text', text: 'Give your first stream a title above, then paste the key into OBS.' })),
  );
}

async function loadStreams() {
  const body = await api('/api/me/streams');
  return Array.isArray(body.streams) ? body.streams : [];
}

async function poll() {
  try {
    const streams = await loadStreams();
    for (const s of streams) {
      const entry = cards.get(s.id);
      if (entry) entry.update(s);
    }
  } catch {
    // A missed poll is fine; the next one catches up.
  }
}

function initCreate() {
  const form = byId('create-form');
  const formError = byId('create-error');
  const submit = byId('create-submit');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form, formError);
    const title = form.elements.title.value.trim();
    const description = form.elements.description.value.trim();
    if (!title) {
      showFieldErrors(form, { title: 'Give your stream a title.' });
      return;
    }
    const body = { title };
    if (description) body.description = description;
    submit.disabled = true;
    try {
      const created = await api('/api/streams', { method: 'POST', body });
      const list = byId('studio-streams');
      if (cards.size === 0) list.replaceChildren();
      const card = streamCard(created.stream, {
        stream_key: created.stream_key,
        rtmp_url: created.rtmp_url,
        rtmps_url: created.rtmps_url,
      });
      list.prepend(card);
      form.reset();
      byId('studio-status').textContent = `Created “${created.stream.title}”. Your key is shown below.`;
      card.scrollIntoView({ behavior: 'smooth', block: 'start' });
    } catch (err) {
      showError(form, formError, err);
    } finally {
      submit.disabled = false;
    }
  });
}

async function main() {
  // The form is wired before anything is awaited: a click that comes as soon as the page has loaded must create the
  // stream, not submit the form natively (a reload that loses it).
  initCreate();
  const user = await initHeader();
  if (!user) {
    location.replace(`/login?next=${encodeURIComponent('/studio')}`);
    return;
  }
  byId('studio-lead').textContent = `Signed in as ${user.username}. Your channels, stream keys and supporters.`;
  const status = byId('studio-status');
  try {
    const streams = await loadStreams();
    const list = byId('studio-streams');
    // A stream created while this list was loading already has its card (with its key): keep it, add the rest.
    const shown = new Set([...list.querySelectorAll('.studio-card[data-stream-id]')].map((el) => el.dataset.streamId));
    if (shown.size === 0) list.replaceChildren();
    if (streams.length === 0 && shown.size === 0) showEmpty();
    for (const s of streams) if (!shown.has(s.id)) list.appendChild(streamCard(s));
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      location.replace(`/login?next=${encodeURIComponent('/studio')}`);
      return;
    }
    status.textContent = describeError(err);
  }
  setInterval(poll, STATUS_POLL_MS);
}

main();
