// The sign-in pages' `?next=` in Chromium (issue 12, item 3): a signed-in visitor sent to /login?next=<trick> must
// stay on this site whatever the trick. Browsers strip tabs and newlines from URLs and read `\` as `/`, so a check
// on the raw string is not enough; the client resolves `next` and keeps it only when its origin is ours.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { DESKTOP, launchBrowser, stackFromEnv, uniqueName, watchPage } from './support.mjs';

const TRICKS = [
  '//evil.example/',
  '/\\evil.example/',
  '/\t/evil.example/',
  '/\n/evil.example/',
  '/\r\n/evil.example/',
  '\t//evil.example/',
  '/\t\\evil.example/',
  '///evil.example/',
  'https://evil.example/',
  'https:evil.example',
  'javascript:window.__sunnyPwned=1',
  '/%09/evil.example/',
  '/%5Cevil.example/',
  '%2F%2Fevil.example/',
  '\\\\evil.example/',
];

let stack;
let browser;
let context;
let page;
let watcher;
const foreign = [];

before(async () => {
  stack = stackFromEnv();
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: DESKTOP });
  // Any request that leaves our origin is recorded and never sent.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (!url.startsWith(stack.base) && !url.startsWith('data:')) {
      foreign.push(url);
      return route.abort();
    }
    return route.continue();
  });
  page = await context.newPage();
  watcher = watchPage(page, 'redirect');
  const username = uniqueName('nexter');
  await page.goto(`${stack.base}/register`);
  await page.fill('#username', username);
  await page.fill('#password', 'sunny-pass-2024');
  await page.click('#auth-submit');
  await page.waitForURL(`${stack.base}/studio`, { timeout: 20000 });
});

after(async () => {
  if (browser) await browser.close();
});

test('a signed-in visitor is never sent off the site by ?next=', { timeout: 120000 }, async () => {
  for (const trick of TRICKS) {
    foreign.length = 0;
    await page.goto(`${stack.base}/login?next=${encodeURIComponent(trick)}`);
    // Signed in already: the page moves on at once, to the fallback for anything that is not ours.
    await page.waitForURL((url) => !url.pathname.startsWith('/login'), { timeout: 15000 }).catch(() => {});
    const landed = page.url();
    assert.deepEqual(foreign, [], `next=${JSON.stringify(trick)} sent the browser to ${foreign.join(', ')}`);
    assert.ok(landed.startsWith(`${stack.base}/`), `next=${JSON.stringify(trick)} landed on ${landed}`);
    assert.equal(await page.evaluate(() => window.__sunnyPwned), undefined, `next=${JSON.stringify(trick)} ran script`);
  }
});

test('a same-site next with a query and a hash is kept', { timeout: 30000 }, async () => {
  await page.goto(`${stack.base}/login?next=${encodeURIComponent('/studio?tab=keys#top')}`);
  await page.waitForURL(`${stack.base}/studio?tab=keys#top`, { timeout: 15000 });
});

test('the redirect pages hit no script error', () => {
  assert.deepEqual(watcher.problems(), []);
});
