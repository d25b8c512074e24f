// The viewer of `scripts/bench latency` (e2e/src/bin/bench_latency.rs), not a test: Debian's Chromium (headless,
// playwright-core, as the browser suite) opens the stream's watch page over https through the Worker, as a viewer
// does, and reads the wall-clock time the publisher drew into each frame (a barcode: BITS black or white blocks, see
// bench_latency.rs) from the picture itself. Every second after a warm-up it waits for the next frame the video
// element presents (requestVideoFrameCallback), draws it into a canvas, decodes the barcode and records
//   glass = now - the time drawn into that frame (the publisher's clock is this machine's clock),
//   pdt   = the player's own delay from PROGRAM-DATE-TIME (what the LIVE badge shows),
// the rendition's height, and counts stalls (`waiting` events while live). Prints one JSON object on stdout.
//
// Environment: SUNNYLIVE_BASE_URL, SUNNYLIVE_SITE_HOST, SUNNYLIVE_SITE_SPKI (as the browser suite), LATENCY_STREAM
// (the stream id), LATENCY_WARMUP_S [20], LATENCY_SAMPLE_S [60].

import { launchBrowser, sleep } from './support.mjs';

const base = process.env.SUNNYLIVE_BASE_URL.replace(/\/+$/, '');
const stream = process.env.LATENCY_STREAM;
const warmupS = Number(process.env.LATENCY_WARMUP_S || 20);
const sampleS = Number(process.env.LATENCY_SAMPLE_S || 60);

const browser = await launchBrowser();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(`${base}/s/${stream}`);
  // Playing: the video advances.
  const deadline = Date.now() + 60000;
  for (;;) {
    const t = await page.evaluate(() => document.getElementById('video').currentTime);
    if (t > 0.5) break;
    if (Date.now() > deadline) throw new Error('the watch page never played');
    await sleep(250);
  }
  await page.evaluate(() => {
    const v = document.getElementById('video');
    window.latencyStalls = 0;
    v.addEventListener('waiting', () => {
      window.latencyStalls += 1;
    });
  });
  await sleep(warmupS * 1000);
  const stallsBefore = await page.evaluate(() => window.latencyStalls);
  const samples = [];
  const started = Date.now();
  for (let i = 0; i < sampleS; i += 1) {
    const next = started + (i + 1) * 1000;
    const s = await page.evaluate(readFrame);
    samples.push(s);
    const wait = next - Date.now();
    if (wait > 0) await sleep(wait);
  }
  const stalls = (await page.evaluate(() => window.latencyStalls)) - stallsBefore;
  process.stdout.write(`${JSON.stringify({ samples, stalls })}\n`);
} finally {
  await browser.close();
}

/** In the page: the next presented frame's barcode time against now, with the player's own view. */
function readFrame() {
  const BITS = 48;
  const COLS = 24;
  return new Promise((resolve) => {
    const v = document.getElementById('video');
    const done = (r) => resolve({ ...r, pdt: window.sunnylivePlayer.delay, height: v.videoHeight, rate: v.playbackRate });
    const timer = setTimeout(() => done({ error: 'no frame presented within 2 s' }), 2000);
    v.requestVideoFrameCallback(() => {
      const now = Date.now();
      clearTimeout(timer);
      const w = v.videoWidth;
      const h = v.videoHeight;
      const c = document.createElement('canvas');
      c.width = w;
      c.height = h;
      const g = c.getContext('2d', { willReadFrequently: true });
      g.drawImage(v, 0, 0, w, h);
      // The layout of bench_latency.rs in the publisher's 1280x720, scaled to the rendition's size.
      const sx = w / 1280;
      const sy = h / 720;
      let bits = 0n;
      for (let i = 0; i < BITS; i += 1) {
        const col = i % COLS;
        const row = Math.floor(i / COLS);
        const x0 = Math.round((40 + col * 48 + 12) * sx);
        const y0 = Math.round((40 + row * 96 + 32) * sy);
        const bw = Math.max(1, Math.round(24 * sx));
        const bh = Math.max(1, Math.round(32 * sy));
        const px = g.getImageData(x0, y0, bw, bh).data;
        let sum = 0;
        for (let k = 0; k < px.length; k += 4) sum += px[k];
        const mean = sum / (px.length / 4);
        if (mean > 128) bits |= 1n << BigInt(i);
      }
      const value = bits & ((1n << 44n) - 1n);
      const check = Number(bits >> 44n);
      // The check nibble: the xor of the value's eleven nibbles (a frame caught mid-transition fails it).
      let x = 0;
      for (let n = 0; n < 11; n += 1) x ^= Number((value >> BigInt(4 * n)) & 15n);
      if (x !== check) {
        done({ error: 'barcode check failed' });
        return;
      }
      // The low 44 bits of unix milliseconds (they wrap every 557 years).
      const full = (BigInt(now) & ~((1n << 44n) - 1n)) | value;
      done({ glass: (now - Number(full)) / 1000 });
    });
  });
}
