// The Operator page in Chromium (issue 26): a viewer reports a stream from their browser; an operator (made with
// `scripts/admin grant`, against this stack's D1) sees the open report on /operator, ends the stream with a reason
// (closing the report), and finds the act in the audit list; a signed-in non-operator is told the page is not for
// them. Screenshotted at desktop and phone width (overflow fails).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';

import { DESKTOP, PHONE, launchBrowser, screenshot, stackFromEnv, uniqueName, watchPage } from './support.mjs';

const PASSWORD = 'operator-pass-2026';
const REPO = fileURLToPath(new URL('../../', import.meta.url));

let stack;
let browser;
const watchers = [];

async function person(prefix) {
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();
  watchers.push(watchPage(page, prefix));
  const username = uniqueName(prefix);
  await page.goto(`${stack.base}/register`);
  await page.fill('#username', username);
  await page.fill('#password', PASSWORD);
  await page.click('#auth-submit');
  await page.waitForURL(`${stack.base}/studio`, { timeout: 20000 });
  return { context, page, username };
}

async function signIn(prefix, username, password) {
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();
  watchers.push(watchPage(page, prefix));
  await page.goto(`${stack.base}/login`);
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.click('#auth-submit');
  await page.waitForURL(`${stack.base}/studio`, { timeout: 20000 });
  return { context, page, username };
}

/** A JSON call from the page, signed in by its cookies (same origin, so the Origin check passes). */
function call(page, method, path, body) {
  return page.evaluate(
    async ([m, p, b]) => {
      const res = await fetch(p, {
        method: m,
        headers: { 'content-type': 'application/json' },
        body: b === null ? undefined : JSON.stringify(b),
      });
      return { status: res.status, body: await res.json().catch(() => null) };
    },
    [method, path, body ?? null],
  );
}

before(async () => {
  stack = stackFromEnv();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
});

test('an operator ends a reported stream from the Operator page and the act is in the audit', { timeout: 90000 }, async () => {
  assert.ok(process.env.SUNNYLIVE_STATE_DIR, 'the harness names the stack state (SUNNYLIVE_STATE_DIR)');
  const viewer = await person('viewer');
  const created = await call(viewer.page, 'POST', '/api/streams', { title: 'reported in the browser' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const streamId = created.body.stream.id;
  const filed = await call(viewer.page, 'POST', '/api/reports', { target_type: 'stream', target_id: streamId, reason: 'violence' });
  assert.equal(filed.status, 201, JSON.stringify(filed.body));

  // Not an operator: the page says so and shows nothing else.
  await viewer.page.goto(`${stack.base}/operator`);
  await viewer.page.locator('#operator-denied').waitFor();
  assert.match(await viewer.page.textContent('#operator-denied'), /for operators/);
  assert.equal(await viewer.page.isVisible('#reports-panel'), false);

  // The suite makes its operators before its parallel tests start (SUNNYLIVE_E2E_OPERATOR, "username:password"):
  // `scripts/admin` writes the local D1 from another process, which the Worker's requests must not meet. Run alone,
  // the file makes its own.
  const made = process.env.SUNNYLIVE_E2E_OPERATOR;
  let op;
  if (made) {
    const [username, password] = made.split(':');
    op = await signIn('oper', username, password);
  } else {
    op = await person('oper');
    execFileSync(`${REPO}scripts/admin`, ['grant', op.username], {
      cwd: REPO,
      env: { ...process.env, SUNNYLIVE_ADMIN_PERSIST_TO: process.env.SUNNYLIVE_STATE_DIR },
    });
  }
  await op.page.goto(`${stack.base}/operator`);
  const row = op.page.locator(`.report[data-report-id="${filed.body.report.id}"]`);
  await row.waitFor();
  assert.match(await row.textContent(), /violence/);
  await screenshot(op.page, 'operator-desktop');

  // An act without a reason is not sent.
  await row.getByRole('button', { name: 'End stream and block key' }).click();
  assert.match(await row.locator('.form__error').textContent(), /Say why/);
  await row.locator('input').fill('livestreamed violence');
  await row.getByRole('button', { name: 'End stream and block key' }).click();
  await row.waitFor({ state: 'detached', timeout: 20000 });
  const audit = op.page.locator('#audit tr', { hasText: 'end_stream' }).filter({ hasText: streamId });
  await audit.first().waitFor();
  assert.match(await audit.first().textContent(), /livestreamed violence/);
  assert.match(await audit.first().textContent(), new RegExp(op.username));

  const small = await op.context.newPage();
  await small.setViewportSize(PHONE);
  watchers.push(watchPage(small, 'operator-phone'));
  await small.goto(`${stack.base}/operator`);
  await small.locator('#audit tr').first().waitFor();
  await screenshot(small, 'operator-phone');

  assert.deepEqual(watchers.flatMap((w) => w.problems()), [], 'no script errors or CSP refusals');
});
