// The docs' screenshots (`make screenshots`): real headless Chromium against the real stack, one short evening in
// order: a streamer registers and creates a stream in Studio, goes live with ffmpeg's test pattern, a viewer and
// the streamer chat, a guest donates by card through the Midtrans stand-in, and the donation reaches the chat, the
// OBS overlay and Studio. Saves docs/img/watch.png (the watch page with chat), docs/img/studio.png and
// docs/img/overlay.png, each only after the page shows what the picture is for.
//
// Not a test file (node --test e2e/browser/ skips it): e2e/src/bin/screenshots.rs starts the stack and runs it with
// SUNNYLIVE_BASE_URL, SUNNYLIVE_RTMP_URL, SUNNYLIVE_MIDTRANS_URL (and the site's host name and key) set, and
// SUNNYLIVE_SCREENSHOT_OUT naming the folder to write.

import fs from 'node:fs';
import path from 'node:path';

import { DESKTOP, eventually, launchBrowser, sleep, stackFromEnv, startPublisher, watchPage } from './support.mjs';

const PASSWORD = 'sunny-pass-2024';
const out = process.env.SUNNYLIVE_SCREENSHOT_OUT;
if (!out) throw new Error('SUNNYLIVE_SCREENSHOT_OUT is not set: run `make screenshots`');
fs.mkdirSync(out, { recursive: true });

const stack = stackFromEnv();
const browser = await launchBrowser();
const watchers = [];
let publisher;

async function page(label) {
  const context = await browser.newContext({ viewport: DESKTOP, colorScheme: 'light' });
  const p = await context.newPage();
  watchers.push(watchPage(p, label));
  return p;
}

async function register(p, username) {
  await p.goto(`${stack.base}/register`);
  await p.fill('#username', username);
  await p.fill('#password', PASSWORD);
  await p.click('#auth-submit');
  await p.waitForURL((url) => !url.pathname.startsWith('/register'), { timeout: 20000 });
}

async function save(p, name, options = {}) {
  await p.evaluate(() => document.fonts.ready);
  await sleep(500);
  const file = path.join(out, `${name}.png`);
  await p.screenshot({ path: file, ...options });
  console.log(`screenshots: wrote ${file}`);
}

try {
  // The streamer: a stream with a title a person would give it, its key read behind "Show key".
  const streamer = await page('streamer');
  // The stack is fresh (its own D1), so the names can be the ones a person would pick.
  await register(streamer, 'sunny_codes');
  await streamer.goto(`${stack.base}/studio`);
  await streamer.fill('#create-title-input', 'Sunday morning coding & coffee');
  await streamer.fill('#create-description-input', 'Building a livestreaming site on the edge, live. Say hi in chat!');
  await streamer.click('#create-submit');
  const card = streamer.locator('.studio-card').first();
  await card.waitFor({ timeout: 15000 });
  const id = await card.getAttribute('data-stream-id');
  // A fresh visit shows the key masked until asked for.
  await streamer.reload();
  const fresh = streamer.locator(`.studio-card[data-stream-id="${id}"]`);
  await fresh.getByRole('button', { name: 'Show key' }).click();
  const keyEl = fresh.locator('[data-role="stream-key"]');
  const key = await eventually(async () => {
    const text = (await keyEl.textContent()).trim();
    return text && !text.includes('•') ? text : null;
  }, 'the key appears after "Show key"');

  // Live: ffmpeg's test pattern through the origin; a viewer's watch page plays it from the Worker.
  const viewer = await page('viewer');
  await register(viewer, 'rina');
  await viewer.goto(`${stack.base}/s/${id}`);
  await viewer.locator('#chat[data-connected="true"]').waitFor({ timeout: 20000 });
  publisher = startPublisher(stack.rtmp, key);
  await eventually(async () => (await viewer.textContent('#stream-status')).trim() === 'Live', 'the watch page turns live', {
    timeoutMs: 45000,
  });
  await eventually(
    () => viewer.evaluate(() => (document.getElementById('video')?.currentTime || 0) > 1),
    'the video plays',
    { timeoutMs: 60000, intervalMs: 500 },
  );

  // Chat both ways.
  const host = streamer;
  await host.goto(`${stack.base}/s/${id}`);
  await host.locator('#chat[data-connected="true"]').waitFor({ timeout: 20000 });
  const lines = [
    [viewer, 'Good morning! The colours are so crisp today'],
    [host, 'Morning Rina! Coffee is on, code is next'],
    [viewer, 'What are we building?'],
    [host, 'A chat room that spans several Durable Objects'],
  ];
  for (const [p, text] of lines) {
    await p.fill('#chat-input', text);
    await p.press('#chat-input', 'Enter');
    await eventually(
      async () => (await viewer.$$eval('#chat-list .msg__text', (els) => els.map((e) => e.textContent))).includes(text),
      `"${text}" reaches the viewer`,
    );
    await sleep(400);
  }

  // A guest donates; the overlay (as OBS shows it) and the chat get the alert.
  const overlay = await page('overlay');
  await overlay.goto(`${stack.base}/overlay/${id}?seconds=120`);
  await overlay.locator('body[data-connected="true"]').waitFor({ timeout: 20000 });
  const guest = await page('guest');
  await guest.goto(`${stack.base}/s/${id}`);
  await guest.click('button.chip[data-amount="25000"]');
  await guest.fill('#donate-name', 'Sunny Fan');
  await guest.fill('#donate-message', 'Semangat! Keep the streams coming');
  await guest.click('#donate-submit');
  await guest.waitForURL((url) => url.href.startsWith(stack.midtrans), { timeout: 20000 });
  await guest.getByRole('button', { name: 'Pay by card' }).click();
  await guest.waitForURL((url) => url.href.startsWith(`${stack.base}/donations/`), { timeout: 30000 });
  await guest.locator('#receipt-icon[data-state="paid"]').waitFor({ timeout: 30000 });
  await overlay.locator('.alert', { hasText: 'Sunny Fan' }).waitFor({ timeout: 30000 });
  await viewer.locator('#chat-list .msg--donation', { hasText: 'Sunny Fan' }).waitFor({ timeout: 30000 });
  await viewer.fill('#chat-input', 'Thank you Sunny Fan!');
  await viewer.press('#chat-input', 'Enter');
  await eventually(async () => (await viewer.textContent('#chat-list')).includes('Thank you Sunny Fan!'), 'the thanks shows');
  await eventually(
    () => viewer.evaluate(() => (document.getElementById('video')?.currentTime || 0) > 3),
    'the video is still playing',
    { timeoutMs: 30000, intervalMs: 500 },
  );

  await save(viewer, 'watch');
  // The overlay page is a transparent 1280x800 canvas with the alert at its top: keep the alert and its glow.
  const alert = await overlay.locator('.alert', { hasText: 'Sunny Fan' }).boundingBox();
  const margin = 48;
  const clip = {
    x: Math.max(0, alert.x - margin),
    y: 0,
    width: Math.min(DESKTOP.width, alert.width + 2 * margin),
    height: Math.min(DESKTOP.height, alert.y + alert.height + margin),
  };
  await save(overlay, 'overlay', { omitBackground: true, clip });
  await streamer.goto(`${stack.base}/studio`);
  await streamer.locator(`.studio-card[data-stream-id="${id}"]`).waitFor({ timeout: 15000 });
  await eventually(async () => (await streamer.textContent('body')).includes('Sunny Fan'), 'Studio lists the donation');
  await save(streamer, 'studio', { fullPage: true });

  const problems = watchers.flatMap((w) => w.problems());
  if (problems.length > 0) throw new Error(`the pages misbehaved:\n${problems.join('\n')}`);
} finally {
  if (publisher) await publisher.stop();
  await browser.close();
}
