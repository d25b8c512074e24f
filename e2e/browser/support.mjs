// Helpers for the browser suite: the stack's URLs (from the Rust harness's environment), Debian's Chromium driven by
// playwright-core, a page watcher that fails the test on script errors, CSP violations and dialogs, screenshots
// with an overflow check, and an ffmpeg test publisher.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export { sleep };

/** The stack under test. The Rust harness (e2e/src/lib.rs) sets these after starting it on free ports. */
export function stackFromEnv() {
  const need = ['SUNNYLIVE_BASE_URL', 'SUNNYLIVE_RTMP_URL', 'SUNNYLIVE_MIDTRANS_URL'];
  const missing = need.filter((name) => !process.env[name]);
  if (missing.length > 0) {
    throw new Error(
      `the browser suite needs ${missing.join(', ')}: run it through \`make test\` (the harness starts the stack and sets them)`,
    );
  }
  const trim = (s) => s.replace(/\/+$/, '');
  return {
    base: trim(process.env.SUNNYLIVE_BASE_URL),
    rtmp: trim(process.env.SUNNYLIVE_RTMP_URL),
    // Optional: the origin's RTMPS ingest when the worker advertises one (RTMPS_INGEST_URL).
    rtmps: process.env.SUNNYLIVE_RTMPS_URL ? trim(process.env.SUNNYLIVE_RTMPS_URL) : null,
    midtrans: trim(process.env.SUNNYLIVE_MIDTRANS_URL),
  };
}

export const SCREENSHOT_DIR = fileURLToPath(new URL('../artifacts/screenshots/', import.meta.url));
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/**
 * Debian's chromium, headless. playwright-core gives every launch a fresh temporary user-data dir (deleted on
 * close), so no profile, cache or cookie survives between runs.
 */
export async function launchBrowser() {
  // The harness serves the site at https://<SUNNYLIVE_SITE_HOST>:<port> through a TLS front with a self-signed
  // certificate: map that name to 127.0.0.1 and trust exactly that certificate's key (the page stays a normal,
  // valid https origin; no certificate errors are ignored wholesale).
  const site = [];
  if (process.env.SUNNYLIVE_SITE_HOST) {
    site.push(`--host-resolver-rules=MAP ${process.env.SUNNYLIVE_SITE_HOST} 127.0.0.1`);
  }
  if (process.env.SUNNYLIVE_SITE_SPKI) {
    site.push(`--ignore-certificate-errors-spki-list=${process.env.SUNNYLIVE_SITE_SPKI}`);
  }
  return chromium.launch({
    executablePath: process.env.SUNNYLIVE_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // Video must start muted-autoplay without a gesture, as it does for a real visitor's muted player.
      '--autoplay-policy=no-user-gesture-required',
      ...site,
    ],
  });
}

/**
 * Watches a page for things that must never happen: an uncaught script error, a Content-Security-Policy
 * violation (our own pages must run under our own policy) or a JavaScript dialog (what an injected alert() would
 * open). `problems()` lists them; the suite asserts the list is empty.
 */
export function watchPage(page, label) {
  const found = [];
  page.on('pageerror', (err) => found.push(`${label}: uncaught ${err.message}`));
  page.on('console', (msg) => {
    const text = msg.text();
    if (/Content.Security.Policy|Refused to (load|execute|connect|apply)/i.test(text)) found.push(`${label}: CSP: ${text}`);
  });
  page.on('dialog', async (dialog) => {
    found.push(`${label}: a ${dialog.type()} dialog opened: ${dialog.message()}`);
    await dialog.dismiss().catch(() => {});
  });
  return { problems: () => found.slice() };
}

/** Screenshot into e2e/artifacts/screenshots/ and fail if the page is wider than the viewport (a layout bug). */
export async function screenshot(page, name, { omitBackground = false } = {}) {
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  // Let fonts and transitions settle so the picture shows what a person sees.
  await page.evaluate(() => document.fonts.ready);
  await sleep(300);
  const overflow = await page.evaluate(() => {
    const doc = document.documentElement;
    const wide = [...document.querySelectorAll('body *')]
      .filter((el) => {
        const r = el.getBoundingClientRect();
        return r.width > 0 && r.right > doc.clientWidth + 1 && getComputedStyle(el).position !== 'fixed';
      })
      .slice(0, 3)
      .map((el) => `${el.tagName.toLowerCase()}.${[...el.classList].join('.')}`);
    return { scroll: doc.scrollWidth - doc.clientWidth, wide };
  });
  await page.screenshot({ path: `${SCREENSHOT_DIR}${name}.png`, fullPage: true, omitBackground });
  if (overflow.scroll > 0) {
    throw new Error(`${name}: the page is ${overflow.scroll}px wider than the viewport (${overflow.wide.join(', ')})`);
  }
}

/** Polls `fn` until it returns a truthy value, or throws `message` after `timeoutMs`. */
export async function eventually(fn, message, { timeoutMs = 20000, intervalMs = 250 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    await sleep(intervalMs);
  }
  throw new Error(`${message} (waited ${timeoutMs} ms; last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

/**
 * An ffmpeg test publisher (colour bars and a tone) to `rtmpUrl/key`, running until `stop()`. ffmpeg's output is
 * kept for the failure message; the key is not printed by us. `mediaSeconds()` is how much video ffmpeg has sent
 * (its `-progress` out_time): on a busy machine the encoder falls behind the wall clock, so that, not the time
 * between start and stop, is what a recording of the publish should last.
 */
export function startPublisher(rtmpUrl, key, size = '640x360', { videoKbps = null } = {}) {
  // `videoKbps`: constant bitrate, as OBS sends (a test pattern left to the encoder's quality setting is far smaller).
  // x264's own CBR (`nal-hrd=cbr`): without it a test pattern, easy to encode, comes out at a third of the rate asked.
  const rate = videoKbps
    ? ['-b:v', `${videoKbps}k`, '-minrate', `${videoKbps}k`, '-maxrate', `${videoKbps}k`, '-bufsize', `${videoKbps}k`, '-x264-params', 'nal-hrd=cbr']
    : [];
  const args = [
    '-hide_banner', '-loglevel', 'warning', '-nostdin',
    '-re', '-f', 'lavfi', '-i', `testsrc=size=${size}:rate=30`,
    '-re', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100',
    '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p', '-g', '30', ...rate,
    '-c:a', 'aac', '-b:a', '64k',
    '-progress', 'pipe:1',
    '-f', 'flv', `${rtmpUrl}/${key}`,
  ];
  const child = spawn('ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  let exited = null;
  let outTimeUs = 0;
  let progress = '';
  child.stdout.on('data', (chunk) => {
    progress += chunk.toString();
    const lines = progress.split('\n');
    progress = lines.pop();
    for (const line of lines) {
      const m = /^out_time_us=(\d+)$/.exec(line.trim());
      if (m) outTimeUs = Number(m[1]);
    }
  });
  child.stderr.on('data', (chunk) => {
    log = (log + chunk.toString()).slice(-4000);
  });
  const done = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });
  return {
    get exited() {
      return exited;
    },
    log: () => log,
    mediaSeconds: () => outTimeUs / 1e6,
    /** SIGINT lets ffmpeg close the RTMP session properly (nginx then calls on_publish_done); SIGKILL after 5 s. */
    async stop() {
      if (exited) return exited;
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const result = await done;
      clearTimeout(timer);
      return result;
    },
  };
}

/** A username that is unique per run and valid for the API (3-32 of [A-Za-z0-9_.-]). */
export function uniqueName(prefix) {
  return `${prefix}_${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`.slice(0, 32);
}
