// The browser suite: real headless Chromium against the real stack (wrangler dev, the nginx RTMP origin, ffmpeg and
// the Midtrans stand-in), one streamer's evening in order: register, create a stream, go live with ffmpeg, a
// viewer watches and chats, a guest donates by card, the alert shows once in both chats and on the OBS overlay,
// the result page says paid, an HTML chat message stays text, ffmpeg stops and the watch page goes offline. Video
// comes from the Worker (R2 at the edge): the home card shows the stream's thumbnail and follows newer ones, hls.js
// plays in its same-origin worker and its live latency is printed, and after the stream the watch page replays the
// broadcast as VOD from its start and the studio deletes it.
// Every page is screenshotted at desktop and phone width into e2e/artifacts/screenshots/ (overflow fails).
//
// Run by the Rust harness as `node --test e2e/browser/` with SUNNYLIVE_BASE_URL, SUNNYLIVE_RTMP_URL,
// SUNNYLIVE_MIDTRANS_URL set. Steps share state and run in order; a step whose
// prerequisite failed says so instead of timing out.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  DESKTOP,
  PHONE,
  eventually,
  launchBrowser,
  screenshot,
  sleep,
  stackFromEnv,
  startPublisher,
  uniqueName,
  watchPage,
} from './support.mjs';

const PASSWORD = 'sunny-pass-2024';
const DONOR = 'Sunny Fan';
const DONATION_MESSAGE = 'Semangat! <b>terus</b>';
const XSS = `<img src=x onerror="window.__sunnyXss=1;alert('xss')">`;

let stack;
let browser;
let publisher;
const watchers = [];
const state = {};

/** The value an earlier step stored, or a clear failure naming the step that did not get that far. */
function need(key) {
  if (state[key] === undefined) throw new Error(`skipped: an earlier step did not produce "${key}"`);
  return state[key];
}

async function newPage(context, label) {
  const page = await context.newPage();
  watchers.push(watchPage(page, label));
  return page;
}

/** Text with the non-breaking spaces Intl puts in "Rp 25.000" made plain, for comparisons. */
function plain(text) {
  return String(text || '').replace(/\s+/g, ' ').trim();
}

async function chatTexts(page) {
  return page.$$eval('#chat-list .msg__text', (els) => els.map((el) => el.textContent));
}

async function donationEntries(page, donor) {
  return page.$$eval(
    '#chat-list .msg--donation',
    (els, who) => els.filter((el) => el.textContent.includes(who)).map((el) => el.textContent),
    donor,
  );
}

async function registerThroughForm(page, username) {
  await page.goto(`${stack.base}/register`);
  await page.fill('#username', username);
  await page.fill('#password', PASSWORD);
  await page.click('#auth-submit');
}

before(async () => {
  stack = stackFromEnv();
  browser = await launchBrowser();
  state.streamerCtx = await browser.newContext({ viewport: DESKTOP });
  state.viewerCtx = await browser.newContext({ viewport: DESKTOP });
  state.guestCtx = await browser.newContext({ viewport: DESKTOP });
  state.overlayCtx = await browser.newContext({ viewport: DESKTOP });
  state.streamerPage = await newPage(state.streamerCtx, 'streamer');
  state.viewerPage = await newPage(state.viewerCtx, 'viewer');
  state.guestPage = await newPage(state.guestCtx, 'guest');
  state.overlayPage = await newPage(state.overlayCtx, 'overlay');
});

after(async () => {
  if (publisher) await publisher.stop();
  if (browser) await browser.close();
});

test('a streamer registers and lands in the studio', { timeout: 60000 }, async () => {
  const page = state.streamerPage;
  const username = uniqueName('streamer');
  await page.goto(`${stack.base}/register`);
  await screenshot(page, 'register-desktop');
  await page.fill('#username', username);
  await page.fill('#password', PASSWORD);
  await page.click('#auth-submit');
  await page.waitForURL(`${stack.base}/studio`, { timeout: 20000 });
  await page.locator('#create-form').waitFor();
  await eventually(async () => plain(await page.textContent('[data-session-nav]')).includes(username), 'header shows the streamer');
  state.streamerName = username;
});

test('a taken username is refused with the API error beside the field, then a viewer signs up', { timeout: 60000 }, async () => {
  const taken = need('streamerName');
  const page = state.viewerPage;
  await registerThroughForm(page, taken);
  const error = page.locator('#username-error');
  await eventually(async () => plain(await error.textContent()).length > 0, 'username error shown');
  assert.equal(await page.getAttribute('#username', 'aria-invalid'), 'true');
  assert.ok(page.url().startsWith(`${stack.base}/register`), 'stays on the register page');
  await screenshot(page, 'register-error-desktop');

  state.viewerName = uniqueName('viewer');
  await page.fill('#username', state.viewerName);
  await page.click('#auth-submit');
  await page.waitForURL(`${stack.base}/studio`, { timeout: 20000 });
});

test('the viewer signs out and back in with the keyboard alone', { timeout: 60000 }, async () => {
  const name = need('viewerName');
  const page = state.viewerPage;
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${stack.base}/`);
  await page.goto(`${stack.base}/login`);
  await screenshot(page, 'login-desktop');
  for (let i = 0; i < 25; i += 1) {
    if ((await page.evaluate(() => document.activeElement && document.activeElement.id)) === 'username') break;
    await page.keyboard.press('Tab');
  }
  assert.equal(await page.evaluate(() => document.activeElement.id), 'username', 'Tab reaches the username field');
  await page.keyboard.type(name);
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'password', 'Tab moves on to the password');
  await page.keyboard.type('wrong-password-1');
  await page.keyboard.press('Enter');
  await eventually(async () => plain(await page.textContent('#form-error')).length > 0, 'a wrong password is refused politely');
  await page.fill('#password', '');
  await page.focus('#password');
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Enter');
  await page.waitForURL(`${stack.base}/studio`, { timeout: 20000 });
});

test('the streamer creates a stream and reads its key behind "Show key"', { timeout: 60000 }, async () => {
  need('streamerName');
  const page = state.streamerPage;
  await page.fill('#create-title-input', 'Sunny morning <i>live</i> & coffee');
  await page.fill('#create-description-input', 'Coding, coffee and good vibes.');
  await page.click('#create-submit');
  const card = page.locator('.studio-card').first();
  await card.waitFor({ timeout: 15000 });
  const id = await card.getAttribute('data-stream-id');
  assert.match(id, /^[A-Za-z0-9_-]+$/);
  assert.equal(plain(await card.locator('.studio-card__title').textContent()), 'Sunny morning <i>live</i> & coffee');

  // A fresh visit shows the key masked until asked for.
  await page.reload();
  const fresh = page.locator(`.studio-card[data-stream-id="${id}"]`);
  await fresh.waitFor();
  const keyEl = fresh.locator('[data-role="stream-key"]');
  assert.match(await keyEl.textContent(), /^•+$/, 'the key is hidden until shown');
  await eventually(async () => plain(await fresh.locator('[data-role="rtmp-url"]').textContent()) === stack.rtmp, 'server URL shown');
  if (stack.rtmps) {
    // With RTMPS configured the rtmps:// Server comes first and plain RTMP is labelled as the fallback.
    const secure = fresh.locator('[data-role="rtmps-url"]');
    await eventually(async () => plain(await secure.textContent()) === stack.rtmps && (await secure.isVisible()), 'RTMPS server URL shown');
    const rows = fresh.locator('.secret__row');
    assert.equal(plain(await rows.nth(0).locator('.secret__label').textContent()), 'Server');
    assert.match(plain(await rows.nth(1).locator('.secret__label').textContent()), /fallback/);
  }
  await screenshot(page, 'studio-desktop');
  await fresh.getByRole('button', { name: 'Show key' }).click();
  const key = await eventually(async () => {
    const text = plain(await keyEl.textContent());
    return text && !text.includes('•') ? text : null;
  }, 'the key appears after "Show key"');
  state.streamId = id;
  state.streamKey = key;
});

test('an expired access cookie is refreshed once and the page carries on signed in', { timeout: 60000 }, async () => {
  const id = need('streamId');
  const ctx = state.streamerCtx;
  // No URL filter: sl_refresh is scoped to Path=/api/auth, so a cookie query for "/" would not list it.
  const before = Object.fromEntries((await ctx.cookies()).map((c) => [c.name, c]));
  assert.ok(before.sl_access && before.sl_refresh, 'both session cookies were set at registration');
  assert.ok(before.sl_access.httpOnly && before.sl_refresh.httpOnly, 'session cookies are HttpOnly');
  // What the browser holds 15 minutes later: the access cookie gone, the refresh cookie still there.
  await ctx.clearCookies({ name: 'sl_access' });
  const page = state.streamerPage;
  await page.goto(`${stack.base}/studio`);
  await page.locator(`.studio-card[data-stream-id="${id}"]`).waitFor({ timeout: 15000 });
  assert.ok(page.url().endsWith('/studio'), 'still in the studio, not sent to sign in');
  const after = Object.fromEntries((await ctx.cookies()).map((c) => [c.name, c]));
  assert.ok(after.sl_access, 'a new access cookie was issued');
  assert.notEqual(after.sl_refresh.value, before.sl_refresh.value, 'the refresh token was rotated');
});

test('ffmpeg publishes and a second context sees the video play', { timeout: 120000 }, async () => {
  const id = need('streamId');
  const page = state.viewerPage;
  await page.goto(`${stack.base}/s/${id}`);
  await page.locator('#chat[data-connected="true"]').waitFor({ timeout: 20000 });
  publisher = startPublisher(stack.rtmp, need('streamKey'));
  state.publishStartedAt = Date.now();

  await eventually(async () => plain(await page.textContent('#stream-status')) === 'Live', 'the watch page turns live', {
    timeoutMs: 30000,
  }).catch((err) => {
    throw new Error(`${err.message}; ffmpeg: ${publisher.exited ? JSON.stringify(publisher.exited) : 'running'} ${publisher.log()}`);
  });
  const first = await eventually(
    () => page.evaluate(() => {
      const v = document.getElementById('video');
      return v && v.currentTime > 0.5 ? v.currentTime : 0;
    }),
    'video starts playing',
    { timeoutMs: 60000, intervalMs: 500 },
  );
  await sleep(2500);
  const later = await page.evaluate(() => document.getElementById('video').currentTime);
  assert.ok(later > first + 1, `video time advances (${first} -> ${later})`);
  assert.equal(await page.getAttribute('#player', 'data-state'), 'playing');
  assert.equal(publisher.exited, null, 'ffmpeg keeps publishing');
  state.playingSince = Date.now() - first * 1000;
  state.live = true;
});

test('the live stream gets a thumbnail on its home page card', { timeout: 90000 }, async () => {
  const id = need('streamId');
  need('live');
  // A page of its own that stays open: a later step checks that it follows newer thumbnails by itself.
  const page = await newPage(state.guestCtx, 'guest-home');
  await page.goto(`${stack.base}/`);
  const card = page.locator(`#live-grid a[data-stream-id="${id}"]`);
  await card.waitFor({ timeout: 20000 });
  // The origin makes one from the first segments; the page picks it up on its next refresh if it was not there yet.
  const thumb = `#live-grid a[data-stream-id="${id}"] img.stream-card__thumb`;
  const src = await eventually(
    () => page.evaluate((sel) => {
      const img = document.querySelector(sel);
      return img && img.complete && img.naturalWidth > 0 && !img.hidden ? img.getAttribute('src') : null;
    }, thumb),
    'a loaded thumbnail on the live card',
    { timeoutMs: 60000, intervalMs: 1000 },
  );
  assert.match(src, new RegExp(`^(/|https://)[^ ]*hls/${id}/[A-Za-z0-9_-]+/thumb\\.jpg\\?v=\\d+$`), `thumbnail URL ${src}`);
  assert.equal(await page.getAttribute(thumb, 'alt'), '', 'the picture is decorative; the card says what it is');
  await screenshot(page, 'home-thumbnail-desktop');
  state.homePage = page;
  state.firstThumbnail = src;
});

test('hls.js plays in its same-origin worker and stays near the live edge (latency printed)', { timeout: 60000 }, async () => {
  need('live');
  const page = state.viewerPage;
  const workers = page.workers().map((w) => w.url());
  assert.ok(
    workers.some((url) => url === `${stack.base}/vendor/hls.worker.js`),
    `hls.js runs its transmuxer in /vendor/hls.worker.js (workers: ${JSON.stringify(workers)})`,
  );
  // About 20 s of live playback, then ask hls.js how far behind the live edge the picture is.
  const wait = state.playingSince + 20000 - Date.now();
  if (wait > 0) await sleep(wait);
  const stats = await page.evaluate(() => {
    const v = document.getElementById('video');
    const p = window.sunnylivePlayer;
    return { mode: p.mode, latency: p.latency, currentTime: v.currentTime, paused: v.paused, rate: v.playbackRate };
  });
  const played = ((Date.now() - state.playingSince) / 1000).toFixed(1);
  console.log(`sunnylive-metric: live latency ${stats.latency === null ? 'n/a' : stats.latency.toFixed(2)} s after ${played} s of playback (hls.js latency; goal < 10 s)`);
  assert.equal(stats.mode, 'live');
  assert.equal(stats.paused, false, 'still playing');
  assert.ok(Number.isFinite(stats.latency) && stats.latency > 0, `hls.js reports a latency (${JSON.stringify(stats)})`);
  assert.ok(stats.latency < 10, `live latency under 10 s, got ${stats.latency.toFixed(2)} s`);
});

test('chat goes both ways between the streamer and a viewer', { timeout: 60000 }, async () => {
  const id = need('streamId');
  const host = state.streamerPage;
  const viewer = state.viewerPage;
  await host.goto(`${stack.base}/s/${id}`);
  await host.locator('#chat[data-connected="true"]').waitFor({ timeout: 20000 });
  await viewer.locator('#chat[data-connected="true"]').waitFor({ timeout: 20000 });
  assert.ok(await host.isVisible('#slow-control'), 'the host sees the moderation controls');
  assert.ok(!(await viewer.isVisible('#slow-control')), 'a viewer does not');

  const fromViewer = 'Halo dari penonton! Stream-nya keren';
  await viewer.fill('#chat-input', fromViewer);
  await viewer.press('#chat-input', 'Enter');
  await eventually(async () => (await chatTexts(host)).includes(fromViewer), 'the host receives the viewer message');

  const fromHost = 'Terima kasih sudah nonton!';
  await host.fill('#chat-input', fromHost);
  await host.click('#chat-send');
  await eventually(async () => (await chatTexts(viewer)).includes(fromHost), 'the viewer receives the host message');
  const badge = viewer.locator('#chat-list .msg--host', { hasText: fromHost }).locator('.badge--host');
  assert.equal(await badge.count(), 1, 'the host message carries the Host badge');
});

test('an HTML chat message shows as text and runs nothing', { timeout: 60000 }, async () => {
  need('streamId');
  const host = state.streamerPage;
  const viewer = state.viewerPage;
  await viewer.fill('#chat-input', XSS);
  await viewer.press('#chat-input', 'Enter');
  for (const page of [host, viewer]) {
    await eventually(async () => (await chatTexts(page)).includes(XSS), 'the markup arrives as literal text');
    assert.equal(await page.locator('#chat-list img').count(), 0, 'no <img> element was created');
    assert.equal(await page.evaluate(() => window.__sunnyXss), undefined, 'the onerror handler never ran');
  }
});

test('the host moderates from the keyboard: deletes a message, turns slow mode on and off', { timeout: 60000 }, async () => {
  need('streamId');
  const host = state.streamerPage;
  const viewer = state.viewerPage;
  assert.equal(await viewer.locator('#chat-list .msg__more').count(), 0, 'viewers get no moderation buttons');

  const target = host.locator('#chat-list li.msg', { hasText: 'window.__sunnyXss' });
  const more = target.locator('.msg__more');
  await more.focus();
  await host.keyboard.press('Enter');
  assert.equal(await more.getAttribute('aria-expanded'), 'true', 'Enter opens the message actions');
  await host.keyboard.press('Tab');
  assert.equal(await host.evaluate(() => document.activeElement.textContent), 'Delete', 'Tab reaches Delete');
  await host.keyboard.press('Enter');
  for (const page of [host, viewer]) {
    await eventually(async () => !(await chatTexts(page)).includes(XSS), 'the deleted message disappears');
    await eventually(async () => (await chatTexts(page)).includes('Message removed by the host'), 'a removal note takes its place');
  }

  await host.selectOption('#slow-select', '5');
  await eventually(async () => plain(await viewer.textContent('#chat-slow')) === 'Slow mode · 5 s', 'viewers see slow mode');
  await host.selectOption('#slow-select', '0');
  await eventually(async () => viewer.isHidden('#chat-slow'), 'slow mode turns off for viewers');
});

test('a burst into a big room arrives in batch frames and the watch page shows each message once, in order', { timeout: 90000 }, async () => {
  const id = need('streamId');
  const host = state.streamerPage;
  const viewer = state.viewerPage;
  // 38 more sockets, from two addresses (a room caps sockets per address at 20), make the room big enough to
  // coalesce (32+). They count how many batch frames they see.
  const crowd = [];
  for (const ip of ['198.18.250.1', '198.18.250.2']) {
    const context = await browser.newContext({ extraHTTPHeaders: { 'cf-connecting-ip': ip } });
    const page = await context.newPage();
    await page.goto(`${stack.base}/healthz`);
    await page.evaluate(async (url) => {
      window.__batches = 0;
      const open = Array.from({ length: 19 }, () => new Promise((resolve, reject) => {
        const ws = new WebSocket(url);
        ws.onmessage = (e) => {
          const frame = JSON.parse(e.data);
          if (frame.type === 'welcome') resolve();
          if (frame.type === 'batch') window.__batches += 1;
        };
        ws.onclose = () => reject(new Error('closed before its welcome'));
      }));
      await Promise.all(open);
    }, `${stack.base.replace('http', 'ws')}/api/streams/${id}/chat`);
    crowd.push({ context, page });
  }
  try {
    const burst = Array.from({ length: 12 }, (_, i) => `burst ${i + 1} of 12`);
    // The host's own extra socket (the access cookie, same origin) sends them back to back.
    await host.evaluate(async ({ url, texts }) => {
      const ws = new WebSocket(url);
      await new Promise((resolve) => { ws.onmessage = resolve; });
      for (const text of texts) ws.send(JSON.stringify({ type: 'chat', text }));
      await new Promise((resolve) => setTimeout(resolve, 500));
      ws.close();
    }, { url: `${stack.base.replace('http', 'ws')}/api/streams/${id}/chat`, texts: burst });
    for (const page of [viewer, host]) {
      await eventually(async () => {
        const shown = (await chatTexts(page)).filter((t) => t.startsWith('burst '));
        return shown.length >= burst.length && shown;
      }, 'the whole burst shows');
      const shown = (await chatTexts(page)).filter((t) => t.startsWith('burst '));
      assert.deepEqual(shown, burst, 'each message once, in sending order');
    }
    const batches = await Promise.all(crowd.map(({ page }) => page.evaluate(() => window.__batches)));
    assert.ok(batches.some((n) => n > 0), `the burst came in batch frames (${batches})`);
  } finally {
    for (const { context } of crowd) await context.close();
  }
});

test('a guest donates by card: one alert in each chat and on the overlay, and the result page says paid', { timeout: 120000 }, async () => {
  const id = need('streamId');
  const overlay = state.overlayPage;
  // Alerts stay up for 30 s here (the overlay's `seconds` setting), long enough to photograph after payment.
  await overlay.goto(`${stack.base}/overlay/${id}?seconds=30`);
  await overlay.locator('body[data-connected="true"]').waitFor({ timeout: 20000 });
  // Record every alert the overlay shows, so "exactly once" can be checked after the alert has gone again.
  await overlay.evaluate(() => {
    window.__alerts = [];
    new MutationObserver((records) => {
      for (const r of records) for (const n of r.addedNodes) if (n.classList && n.classList.contains('alert')) window.__alerts.push(n.textContent);
    }).observe(document.getElementById('overlay'), { childList: true });
  });
  const bg = await overlay.evaluate(() => [getComputedStyle(document.documentElement).backgroundColor, getComputedStyle(document.body).backgroundColor]);
  assert.deepEqual(bg, ['rgba(0, 0, 0, 0)', 'rgba(0, 0, 0, 0)'], 'the overlay is transparent for OBS');

  const guest = state.guestPage;
  await guest.goto(`${stack.base}/s/${id}`);
  await guest.locator('#chat[data-connected="true"]').waitFor({ timeout: 20000 });
  assert.ok(await guest.isVisible('#chat-signin'), 'a guest is invited to sign in to chat');
  await guest.click('button.chip[data-amount="25000"]');
  assert.equal(await guest.inputValue('#donate-amount'), '25.000');
  await guest.fill('#donate-name', DONOR);
  await guest.fill('#donate-message', DONATION_MESSAGE);
  await guest.click('#donate-submit');
  await guest.waitForURL((url) => url.href.startsWith(stack.midtrans), { timeout: 20000 });
  await screenshot(guest, 'midtrans-payment-page-desktop');
  await guest.getByRole('button', { name: 'Pay by card' }).click();
  await guest.waitForURL((url) => url.href.startsWith(`${stack.base}/donations/`), { timeout: 30000 });
  state.orderId = decodeURIComponent(new URL(guest.url()).pathname.split('/')[2]);

  await guest.locator('#receipt-icon[data-state="paid"]').waitFor({ timeout: 30000 });
  assert.match(plain(await guest.textContent('#receipt-title')), /went through/);
  assert.equal(plain(await guest.textContent('#receipt-amount')), 'Rp 25.000');
  assert.equal(await guest.textContent('#receipt-message'), DONATION_MESSAGE, 'the message is shown as text');
  assert.equal(plain(await guest.textContent('#receipt-donor')), DONOR);

  await eventually(
    async () => (await overlay.evaluate(() => window.__alerts)).some((t) => t.includes(DONOR)),
    'the overlay shows the donation alert',
  ).catch(async (err) => {
    const diag = await overlay.evaluate(() => ({ alerts: window.__alerts, connected: document.body.dataset.connected, stage: document.getElementById('overlay').textContent }));
    const chats = await donationEntries(state.viewerPage, DONOR);
    throw new Error(`${err.message}; overlay ${JSON.stringify(diag)}; viewer chat donations ${JSON.stringify(chats)}`);
  });
  const alert = overlay.locator('.alert', { hasText: DONOR });
  await alert.waitFor({ timeout: 5000 });
  assert.match(plain(await alert.textContent()), /Rp 25\.000/);
  assert.ok(plain(await alert.textContent()).includes(DONATION_MESSAGE), 'the alert carries the message as text');
  await screenshot(overlay, 'overlay-desktop', { omitBackground: true });

  for (const [label, page] of [['host', state.streamerPage], ['viewer', state.viewerPage]]) {
    await eventually(async () => (await donationEntries(page, DONOR)).length === 1, `the donation shows in the ${label} chat`);
  }
  // Exactly once: nothing repeats it a few seconds later (webhook retries, capture + settlement, reconnects).
  await sleep(4000);
  for (const [label, page] of [['host', state.streamerPage], ['viewer', state.viewerPage]]) {
    const entries = await donationEntries(page, DONOR);
    assert.equal(entries.length, 1, `one donation entry in the ${label} chat, got ${entries.length}`);
    assert.ok(plain(entries[0]).includes('Rp 25.000') && entries[0].includes(DONATION_MESSAGE));
  }
  const alerts = await overlay.evaluate(() => window.__alerts.filter((t) => t.includes('Sunny Fan')));
  assert.equal(alerts.length, 1, `one overlay alert, got ${alerts.length}`);
});

test('the studio shows the donation, its total and the leaderboard', { timeout: 60000 }, async () => {
  const id = need('streamId');
  need('orderId');
  const page = state.streamerPage;
  await page.goto(`${stack.base}/studio`);
  const card = page.locator(`.studio-card[data-stream-id="${id}"]`);
  await card.waitFor();
  await eventually(async () => plain(await card.locator('[data-role="total-paid"]').textContent()) === 'Rp 25.000', 'total paid shows Rp 25.000');
  await eventually(async () => plain(await card.locator('.leaderboard__list').textContent()).includes(DONOR), 'the donor leads the board');
  assert.ok(plain(await card.locator('.studio-card__status .badge--live').textContent()).toLowerCase().includes('live'), 'the stream shows as live');
});

test('the home page card follows the stream to a newer thumbnail without a reload', { timeout: 90000 }, async () => {
  const id = need('streamId');
  const page = need('homePage');
  const first = need('firstThumbnail');
  // The origin sends a new still about every 20 s and the page fetches the listing every 15 s.
  const next = await eventually(
    () => page.evaluate(([sel, was]) => {
      const img = document.querySelector(sel);
      return img && img.getAttribute('src') !== was && img.complete && img.naturalWidth > 0 ? img.getAttribute('src') : null;
    }, [`#live-grid a[data-stream-id="${id}"] img.stream-card__thumb`, first]),
    'a newer thumbnail replaces the first one',
    { timeoutMs: 75000, intervalMs: 1000 },
  );
  assert.notEqual(next, first);
  await page.close();
});

test('every page looks right at desktop and phone width', { timeout: 180000 }, async () => {
  const id = need('streamId');
  const orderId = need('orderId');
  // Desktop pages not yet captured, while the stream is live and the donation is in.
  const host = state.streamerPage;
  await host.goto(`${stack.base}/studio`);
  await host.locator('.studio-card').first().waitFor();
  await eventually(async () => plain(await host.locator('[data-role="total-paid"]').first().textContent()).startsWith('Rp'), 'studio loaded');
  await screenshot(host, 'studio-with-donation-desktop');
  await host.goto(`${stack.base}/s/${id}`);
  await host.locator('#chat[data-connected="true"]').waitFor();
  await screenshot(host, 'watch-host-desktop');
  await screenshot(state.viewerPage, 'watch-live-desktop');
  await screenshot(state.guestPage, 'donation-result-desktop');

  const guestDesk = await newPage(state.guestCtx, 'guest-desktop-tour');
  for (const [name, path] of [['home', '/'], ['search', '/?q=sunny'], ['not-found', '/no-such-page']]) {
    await guestDesk.goto(`${stack.base}${path}`);
    await sleep(800);
    await screenshot(guestDesk, `${name}-desktop`);
  }
  const home = await guestDesk.goto(`${stack.base}/`);
  assert.equal(home.status(), 200);
  await eventually(async () => (await guestDesk.locator(`#live-grid a[data-stream-id="${id}"]`).count()) === 1, 'the live stream is listed under Live now');
  const missing = await guestDesk.goto(`${stack.base}/no-such-page`);
  assert.equal(missing.status(), 404, 'unknown paths answer 404 with the 404 page');
  await guestDesk.close();

  // Phone width: a signed-in streamer and a guest.
  const phone = { viewport: PHONE, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
  const streamerPhone = await browser.newContext({ ...phone, storageState: await state.streamerCtx.storageState() });
  const guestPhone = await browser.newContext(phone);
  try {
    const sp = await newPage(streamerPhone, 'streamer-phone');
    await sp.goto(`${stack.base}/studio`);
    await sp.locator('.studio-card').first().waitFor();
    await sleep(800);
    await screenshot(sp, 'studio-phone');
    await sp.goto(`${stack.base}/s/${id}`);
    await sp.locator('#chat[data-connected="true"]').waitFor();
    await sleep(1500);
    await screenshot(sp, 'watch-host-phone');

    const gp = await newPage(guestPhone, 'guest-phone');
    const tour = [
      ['home', '/'],
      ['search', '/?q=sunny'],
      ['login', '/login'],
      ['register', '/register'],
      ['watch-live', `/s/${id}`],
      ['donation-result', `/donations/${encodeURIComponent(orderId)}`],
      ['not-found', '/no-such-page'],
    ];
    for (const [name, path] of tour) {
      await gp.goto(`${stack.base}${path}`);
      await sleep(name === 'watch-live' ? 3000 : 1000);
      await screenshot(gp, `${name}-phone`);
    }
    await gp.goto(`${stack.base}/overlay/${id}`);
    await gp.locator('body[data-connected="true"]').waitFor();
    await screenshot(gp, 'overlay-phone', { omitBackground: true });
  } finally {
    await streamerPhone.close();
    await guestPhone.close();
  }
});

test('stopping ffmpeg turns the watch page offline', { timeout: 90000 }, async () => {
  need('live');
  const page = state.viewerPage;
  const exit = await publisher.stop();
  state.publishStoppedAt = Date.now();
  state.publishSeconds = (state.publishStoppedAt - state.publishStartedAt) / 1000;
  state.publishMediaSeconds = publisher.mediaSeconds();
  assert.ok(exit, 'ffmpeg stopped');
  await page.locator('#player[data-state="offline"]').waitFor({ timeout: 45000 });
  assert.equal(plain(await page.textContent('#stream-status')), 'Offline');
  assert.match(plain(await page.textContent('#player-title')), /offline/i);
  assert.equal(await page.evaluate(() => document.getElementById('video').paused), true, 'the player stopped');
  await screenshot(page, 'watch-offline-desktop');
  state.offline = true;
});

/** The stream's broadcasts as the API lists them. */
async function listBroadcasts(page, id) {
  return page.evaluate(async (streamId) => {
    const res = await fetch(`/api/streams/${streamId}/broadcasts?limit=10`);
    return (await res.json()).broadcasts;
  }, id);
}

test('the offline watch page offers the broadcast and plays it as VOD from its start', { timeout: 120000 }, async () => {
  const id = need('streamId');
  need('offline');
  const page = state.viewerPage;
  // The origin uploads the last segment just after the publish ends; the page lists the broadcast at once and
  // looks again 10 s later for its final length.
  const broadcast = await eventually(async () => {
    const [latest] = await listBroadcasts(page, id);
    return latest && !latest.live && latest.segment_count > 0 ? latest : null;
  }, 'the API lists the ended broadcast');
  await page.locator('#past').waitFor({ state: 'visible', timeout: 20000 });
  const row = page.locator(`#past-list .broadcast__play[data-broadcast-id="${broadcast.id}"]`);
  await row.waitFor({ timeout: 20000 });
  assert.match(plain(await page.textContent('#player-text')), /past broadcast below/, 'the offline card points at them');
  const settle = state.publishStoppedAt + 12000 - Date.now();
  if (settle > 0) await sleep(settle);
  const settled = (await listBroadcasts(page, id)).find((b) => b.id === broadcast.id);
  assert.ok(settled.ended_at, 'the broadcast has ended');
  assert.match(broadcast.playlist_url, new RegExp(`^/hls/${id}/${broadcast.id}/master\\.m3u8$`));
  // The master playlist names each rendition's own playlist; the source's is closed like every other.
  const playlist = await page.evaluate(async (url) => {
    const master = await (await fetch(url)).text();
    const source = master.split('\n').find((line) => line.startsWith('source/'));
    return source ? (await fetch(new URL(source, new URL(url, location.href)))).text() : master;
  }, settled.playlist_url);
  assert.ok(playlist.includes('#EXT-X-ENDLIST'), 'the ended broadcast is a closed (VOD) playlist');
  assert.match(plain(await row.textContent()), /\d+:\d\d/, 'the row shows the length');
  await screenshot(page, 'watch-past-broadcasts-desktop');

  // Keyboard: focus the row and press Enter.
  await row.focus();
  await page.keyboard.press('Enter');
  await page.locator('#player[data-mode="vod"]').waitFor({ timeout: 10000 });
  assert.equal(await row.getAttribute('aria-current'), 'true', 'the row playing is marked');
  const start = await eventually(
    () => page.evaluate(() => {
      const v = document.getElementById('video');
      return v.currentTime > 0 && !v.paused ? { t: v.currentTime, duration: v.duration } : null;
    }),
    'the broadcast starts playing',
    { timeoutMs: 30000, intervalMs: 100 },
  );
  assert.ok(start.t < 3, `it plays from its start (first seen at ${start.t.toFixed(2)} s)`);
  await sleep(2500);
  const later = await page.evaluate(() => document.getElementById('video').currentTime);
  assert.ok(later > start.t + 1, `VOD time advances (${start.t} -> ${later})`);
  const duration = await page.evaluate(() => document.getElementById('video').duration);
  assert.ok(Number.isFinite(duration), 'a VOD has a finite duration');
  assert.ok(Math.abs(duration - settled.duration_seconds) < 1, `the player (${duration} s) and the API (${settled.duration_seconds} s) agree on the length`);
  state.broadcastId = broadcast.id;
  state.vodSeconds = duration;
  state.apiBroadcast = settled;

  // Normal seeking works: jump to the middle and keep playing from there.
  const middle = Math.floor(duration / 2);
  await page.evaluate((t) => {
    document.getElementById('video').currentTime = t;
  }, middle);
  await eventually(
    () => page.evaluate((t) => {
      const v = document.getElementById('video');
      return v.currentTime > t + 0.5 && !v.paused;
    }, middle),
    'playback continues after seeking to the middle',
    { timeoutMs: 20000 },
  );
  await screenshot(page, 'watch-vod-desktop');

  const phone = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  try {
    const gp = await newPage(phone, 'guest-phone-offline');
    await gp.goto(`${stack.base}/s/${id}`);
    await gp.locator(`#past-list .broadcast__play[data-broadcast-id="${broadcast.id}"]`).waitFor({ timeout: 20000 });
    await screenshot(gp, 'watch-past-broadcasts-phone');
  } finally {
    await phone.close();
  }
});

test('the recording lasts as long as the video ffmpeg published', { timeout: 10000 }, async () => {
  const duration = need('vodSeconds');
  const settled = need('apiBroadcast');
  const sent = state.publishMediaSeconds;
  console.log(
    `sunnylive-metric: VOD duration ${duration.toFixed(2)} s; ffmpeg sent ${sent.toFixed(2)} s of video during a ${state.publishSeconds.toFixed(2)} s publish (${settled.segment_count} segments)`,
  );
  assert.ok(sent > 10, `ffmpeg reported its progress (${sent} s)`);
  assert.ok(Math.abs(duration - sent) < 3, `the VOD (${duration.toFixed(1)} s) is within 3 s of the ${sent.toFixed(1)} s ffmpeg published`);
});

test('the studio deletes a past broadcast after a confirmation', { timeout: 90000 }, async () => {
  const id = need('streamId');
  const broadcastId = need('broadcastId');
  const page = state.streamerPage;
  await page.goto(`${stack.base}/studio`);
  const card = page.locator(`.studio-card[data-stream-id="${id}"]`);
  const row = card.locator(`.broadcast[data-broadcast-id="${broadcastId}"]`);
  await row.waitFor({ timeout: 20000 });
  assert.ok(await card.locator('.obs-settings').isVisible(), 'the studio shows the OBS settings');
  await card.locator('.obs-settings__summary').click();
  assert.match(plain(await card.locator('.obs-settings').textContent()), /H\.264.*AAC.*2 s.*CBR/);
  assert.equal(await row.locator('a', { hasText: 'Watch' }).getAttribute('href'), `/s/${id}?broadcast=${broadcastId}`);
  await screenshot(page, 'studio-broadcasts-desktop');

  // Cancelling deletes nothing.
  await row.getByRole('button', { name: /^Delete the broadcast of / }).click();
  const dialog = page.locator('dialog.dialog[open]');
  await dialog.waitFor();
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'detached' });
  assert.equal(await row.count(), 1, 'cancel keeps the broadcast');

  await row.getByRole('button', { name: /^Delete the broadcast of / }).click();
  await dialog.waitFor();
  assert.match(plain(await dialog.textContent()), /deleted for good/);
  await screenshot(page, 'studio-delete-broadcast-dialog-desktop');
  await dialog.locator('[data-confirm]').click();
  await row.waitFor({ state: 'detached', timeout: 15000 });
  await eventually(async () => !(await listBroadcasts(page, id)).some((b) => b.id === broadcastId), 'the API no longer lists it');
  assert.match(plain(await card.locator('.broadcast-list__message').textContent()), /deleted/i);

  const phone = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true, deviceScaleFactor: 2, storageState: await state.streamerCtx.storageState() });
  try {
    const sp = await newPage(phone, 'streamer-phone-after-delete');
    await sp.goto(`${stack.base}/studio`);
    await sp.locator('.studio-card .broadcast-list').first().waitFor();
    await sleep(800);
    await screenshot(sp, 'studio-broadcasts-phone');
  } finally {
    await phone.close();
  }
});

test('no page hit a script error, a CSP violation or a dialog', () => {
  const problems = watchers.flatMap((w) => w.problems());
  assert.deepEqual(problems, []);
});

test('the quality menu pins a rendition, Auto releases it, and the choice is remembered', { timeout: 150000 }, async () => {
  // A second stream of the same streamer, published at 720p: the origin adds the 480p and 360p renditions.
  const page = state.streamerPage;
  need('streamId');
  const created = await page.evaluate(async () => {
    const r = await fetch('/api/streams', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'Ladder' }),
    });
    return r.json();
  });
  assert.ok(created.stream && created.stream_key, `a second stream: ${JSON.stringify(Object.keys(created))}`);
  // 2.5 Mbit/s CBR, as OBS sends 720p: the renditions are the lighter choices.
  const ladder = startPublisher(stack.rtmp, created.stream_key, '1280x720', { videoKbps: 2500 });
  try {
    const viewer = state.viewerPage;
    await viewer.goto(`${stack.base}/s/${created.stream.id}`);
    const options = async () => viewer.$$eval('#player-quality option', (os) => os.map((o) => o.value));
    // hls.js reads the master when the page starts playing; it lists every rendition with a segment by then, or
    // the page is reloaded until it does.
    await eventually(async () => {
      const values = await options();
      if (values.length >= 4) return values;
      if ((await viewer.getAttribute('#player', 'data-state')) === 'playing') await viewer.reload();
      return null;
    }, 'the quality menu lists Auto and three renditions', { timeoutMs: 90000, intervalMs: 3000 });
    assert.deepEqual(await options(), ['auto', '720', '480', '360']);
    assert.ok(await viewer.locator('#player-quality').isVisible(), 'the menu is shown');
    const quality = () => viewer.evaluate(() => window.sunnylivePlayer.quality);
    assert.equal((await quality()).auto, true, 'Auto by default');

    await viewer.selectOption('#player-quality', '360');
    await eventually(async () => {
      const q = await quality();
      return !q.auto && q.height === 360;
    }, 'the menu pins 360p');
    assert.equal(await viewer.evaluate(() => localStorage.getItem('sunnylive.quality')), '360');
    await eventually(async () => {
      const v = await viewer.evaluate(() => ({ h: document.getElementById('video').videoHeight, t: document.getElementById('video').currentTime }));
      return v.h === 360;
    }, 'the picture is the 360p rendition', { timeoutMs: 30000 });

    // Remembered per browser: a new page starts pinned.
    await viewer.reload();
    await eventually(async () => {
      const q = await quality();
      return q && q.levels >= 3 && !q.auto && q.height === 360;
    }, 'the choice survives a reload', { timeoutMs: 30000 });

    await viewer.selectOption('#player-quality', 'auto');
    await eventually(async () => (await quality()).auto, 'Auto releases the pin');
    assert.equal(await viewer.evaluate(() => localStorage.getItem('sunnylive.quality')), 'auto');
    assert.match(plain(await viewer.textContent('#player-live')), /^LIVE( \d+\.\d s)?$/, 'the live badge shows');
  } finally {
    await ladder.stop();
  }
});
