// Simulcast in the studio (issue 24): a streamer adds two outputs through the form (a local RTMP receiver standing
// in for another platform, and a target that refuses the key), goes live with ffmpeg, sees one output turn Live
// and the other Error with its reason, switches the live one off (its receiver is let go), and removes the other
// after a confirmation. Bad input shows beside its field; the output key never appears in the page.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { after, before, test } from 'node:test';

import { DESKTOP, eventually, launchBrowser, screenshot, stackFromEnv, startPublisher, uniqueName, watchPage } from './support.mjs';

const GOOD_KEY = `live_good_${Date.now().toString(36)}_Q7zX`;
const BAD_KEY = `live_refused_${Date.now().toString(36)}_R2dW`;

let stack;
let browser;
let page;
let watcher;
let publisher;
let receiver;

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** `ffmpeg -listen 1`: takes one publisher, logs the stream name it asked for, exits when it goes away. */
async function startReceiver() {
  const port = await freePort();
  const child = spawn('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'warning', '-listen', '1', '-i', `rtmp://127.0.0.1:${port}/app/expected`, '-f', 'null', '-'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let said = '';
  let exited = false;
  child.stderr.on('data', (c) => {
    said += c.toString();
  });
  child.on('exit', () => {
    exited = true;
  });
  return {
    url: `rtmp://127.0.0.1:${port}/app`,
    said: () => said,
    exited: () => exited,
    stop: () => child.kill('SIGKILL'),
  };
}

before(async () => {
  stack = stackFromEnv();
  browser = await launchBrowser();
  const context = await browser.newContext({ viewport: DESKTOP });
  page = await context.newPage();
  watcher = watchPage(page, 'simulcast');
  await page.goto(`${stack.base}/register`);
  await page.fill('#username', uniqueName('simul'));
  await page.fill('#password', 'sunny-pass-2024');
  await page.click('#auth-submit');
  await page.waitForURL(`${stack.base}/studio`, { timeout: 20000 });
  receiver = await startReceiver();
});

after(async () => {
  if (publisher) await publisher.stop();
  if (receiver) receiver.stop();
  if (browser) await browser.close();
});

test('the studio adds, watches, switches off and removes simulcast outputs', { timeout: 120000 }, async () => {
  await page.fill('#create-title-input', 'Everywhere at once');
  await page.click('#create-submit');
  const card = page.locator('.studio-card').first();
  await card.waitFor({ timeout: 15000 });
  const section = card.locator('[data-role="simulcast"]');
  const form = section.locator('form');

  // Bad input: beside the field, from the API's own answer.
  await form.locator('[name="name"]').fill('Nowhere');
  await form.locator('[name="url"]').fill('http://live.example.net/app');
  await form.locator('[name="key"]').fill('some-key-1234');
  await form.getByRole('button', { name: 'Add output' }).click();
  await eventually(async () => /rtmp/.test(await form.locator('[data-field-error="url"]').textContent()), 'the URL error shows beside its field');
  assert.equal(await section.locator('li.output').count(), 0, 'nothing was added');

  for (const [name, url, key] of [
    ['Receiver', receiver.url, GOOD_KEY],
    ['Refuses', stack.rtmp, BAD_KEY],
  ]) {
    await form.locator('[name="name"]').fill(name);
    await form.locator('[name="url"]').fill(url);
    await form.locator('[name="key"]').fill(key);
    await form.getByRole('button', { name: 'Add output' }).click();
    await eventually(async () => (await section.locator('li.output', { hasText: name }).count()) === 1, `${name} is listed`);
    assert.equal(await form.locator('[name="key"]').inputValue(), '', 'the key field is cleared once sent');
  }
  const good = section.locator('li.output', { hasText: 'Receiver' });
  const bad = section.locator('li.output', { hasText: 'Refuses' });
  assert.match(await good.textContent(), /…Q7zX/, 'the key hint shows the last four characters');
  assert.match(await good.locator('[data-role="output-status"]').textContent(), /Idle/);

  // Go live: the studio polls and shows each output's status.
  // A card made just now shows its key already; after a reload it would be behind "Show key".
  if ((await card.locator('[data-role="stream-key"]').textContent()).includes('•')) {
    await card.getByRole('button', { name: 'Show key' }).click();
  }
  const streamKey = await eventually(async () => {
    const text = (await card.locator('[data-role="stream-key"]').textContent()).trim();
    return text && !text.includes('•') ? text : null;
  }, 'the stream key appears');
  publisher = startPublisher(stack.rtmp, streamKey);
  await eventually(async () => /Live/.test(await good.locator('[data-role="output-status"]').textContent()), 'the receiver output shows Live', { timeoutMs: 40000 });
  assert.ok(receiver.said().includes(`Unexpected stream ${GOOD_KEY},`), 'the receiver got the stream under its key');
  await eventually(async () => /Error/.test(await bad.locator('[data-role="output-status"]').textContent()), 'the refused output shows Error', { timeoutMs: 30000 });
  assert.match(await bad.locator('[data-role="output-message"]').textContent(), /refused/i, 'with a reason');
  await screenshot(page, 'studio-simulcast');

  // The keys are nowhere in the page: not in its text, not in any attribute or input.
  const html = await page.content();
  const text = await page.evaluate(() => document.body.innerText);
  for (const key of [GOOD_KEY, BAD_KEY]) {
    assert.ok(!html.includes(key) && !text.includes(key), 'an output key is in the page');
  }

  // Switch the live one off: the receiver is let go within a few seconds.
  await good.getByRole('checkbox').uncheck();
  await eventually(async () => /Idle/.test(await good.locator('[data-role="output-status"]').textContent()), 'the switched-off output shows Idle');
  await eventually(async () => receiver.exited(), 'the receiver is let go after the output is switched off', { timeoutMs: 8000 });

  // Remove the other after confirming.
  await bad.getByRole('button', { name: 'Remove Refuses' }).click();
  await page.locator('dialog [data-confirm]').click();
  await eventually(async () => (await section.locator('li.output', { hasText: 'Refuses' }).count()) === 0, 'the removed output is gone');
  await page.reload();
  const fresh = page.locator('.studio-card').first().locator('[data-role="simulcast"]');
  await eventually(async () => (await fresh.locator('li.output').count()) === 1, 'one output left after a reload');
  assert.deepEqual(watcher.problems(), [], "no script error, CSP violation or dialog");
});
