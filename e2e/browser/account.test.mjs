// The Account and recovery pages in Chromium (issue 26): one person on two devices (two browser contexts). The
// first makes recovery codes and changes the password, which signs the second out; the second gets back in with a
// recovery code on /recover; then the Account page ends the other device's sign-in with its "End" button and
// "Sign out everywhere else". Each page is screenshotted at desktop and phone width (overflow fails).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { DESKTOP, PHONE, eventually, launchBrowser, screenshot, stackFromEnv, uniqueName, watchPage } from './support.mjs';

const FIRST_PASSWORD = 'sunny-pass-2024';
const SECOND_PASSWORD = 'sunny-pass-2025';
const THIRD_PASSWORD = 'sunny-pass-2026';

let stack;
let browser;
const watchers = [];
const state = {};

function need(key) {
  if (state[key] === undefined) throw new Error(`skipped: an earlier step did not produce "${key}"`);
  return state[key];
}

async function device(label) {
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();
  watchers.push(watchPage(page, label));
  return { context, page };
}

async function signIn(page, username, password) {
  await page.goto(`${stack.base}/login?next=${encodeURIComponent('/account')}`);
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.click('#auth-submit');
  await page.waitForURL(`${stack.base}/account`, { timeout: 20000 });
}

async function signInRows(page) {
  await page.locator('#sign-ins .sign-in').first().waitFor();
  return page.$$eval('#sign-ins .sign-in', (els) =>
    els.map((el) => ({ current: el.dataset.current === 'true', text: el.textContent })),
  );
}

/** A signed-out device sent to /account ends up on the sign-in page. */
async function isSignedOut(page) {
  await page.goto(`${stack.base}/account`);
  await page.waitForURL(/\/login\?next=/, { timeout: 20000 });
  return true;
}

before(async () => {
  stack = stackFromEnv();
  browser = await launchBrowser();
  state.laptop = await device('laptop');
  state.phone = await device('phone');
});

after(async () => {
  if (browser) await browser.close();
});

test('the header links a signed-in person to the Account page, which lists both devices', { timeout: 60000 }, async () => {
  const { page } = state.laptop;
  const username = uniqueName('acct');
  await page.goto(`${stack.base}/register`);
  await page.fill('#username', username);
  await page.fill('#password', FIRST_PASSWORD);
  await page.click('#auth-submit');
  await page.waitForURL(`${stack.base}/studio`, { timeout: 20000 });
  await signIn(state.phone.page, username, FIRST_PASSWORD);

  await page.getByRole('link', { name: 'Account' }).click();
  await page.waitForURL(`${stack.base}/account`);
  const rows = await signInRows(page);
  assert.equal(rows.length, 2, 'the registration and the other device');
  assert.equal(rows.filter((r) => r.current).length, 1, 'one is this device');
  assert.ok(rows.every((r) => !/Mozilla|HeadlessChrome\/\d/.test(r.text)), 'no User-Agent, only a browser family');
  assert.ok(rows.every((r) => /Chrome/.test(r.text)), `Chromium is named by its family: ${rows.map((r) => r.text)}`);
  await screenshot(page, 'account-desktop');
  state.username = username;
});

test('recovery codes are made with the password and shown once', { timeout: 60000 }, async () => {
  need('username');
  const { page } = state.laptop;
  await page.fill('#codes-password', 'not-my-password');
  await page.click('#codes-submit');
  await eventually(async () => (await page.textContent('#codes-password-error')).trim().length > 0, 'a wrong password is refused beside the field');
  assert.equal(await page.isHidden('#codes-out'), true, 'no codes for a wrong password');
  await page.fill('#codes-password', FIRST_PASSWORD);
  await page.click('#codes-submit');
  await page.locator('#codes-out').waitFor();
  const codes = await page.$$eval('#recovery-codes li', (els) => els.map((el) => el.textContent.trim()));
  assert.equal(codes.length, 10);
  assert.ok(codes.every((c) => /^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$/.test(c)), `codes: ${codes}`);
  state.codes = codes;
});

test('changing the password signs the other device out', { timeout: 60000 }, async () => {
  need('username');
  const { page } = state.laptop;
  await page.fill('#current-password', FIRST_PASSWORD);
  await page.fill('#new-password', 'short');
  await page.click('#password-submit');
  await eventually(async () => (await page.textContent('#new-password-error')).trim().length > 0, 'a short new password is refused');
  await page.fill('#new-password', SECOND_PASSWORD);
  await page.click('#password-submit');
  await eventually(async () => /1 other sign-in was ended/.test(await page.textContent('#password-ok')), 'the page says the others were ended');
  // The page says so first, then reloads the list: wait for the list, not for the message.
  await eventually(async () => (await signInRows(page)).length === 1, 'only this device is left');
  assert.ok(await isSignedOut(state.phone.page), 'the other device is signed out');
});

test('a recovery code on /recover gets the other device back in, and only once', { timeout: 60000 }, async () => {
  const codes = need('codes');
  const { page } = state.phone;
  await page.goto(`${stack.base}/login`);
  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  await page.waitForURL(`${stack.base}/recover`);
  await page.fill('#username', state.username);
  await page.fill('#code', codes[0].toUpperCase().replaceAll('-', ' '));
  await page.fill('#new-password', THIRD_PASSWORD);
  await screenshot(page, 'recover-desktop');
  await page.click('#recover-submit');
  await page.waitForURL(`${stack.base}/account`, { timeout: 20000 });
  assert.equal((await signInRows(page)).length, 1, 'recovery signed every other device out');
  assert.ok(await isSignedOut(state.laptop.page), 'the laptop is signed out by the recovery');

  // The signed-out laptop tries the same code: refused.
  const laptop = state.laptop.page;
  await laptop.goto(`${stack.base}/recover`);
  await laptop.fill('#username', state.username);
  await laptop.fill('#code', codes[0]);
  await laptop.fill('#new-password', 'sunny-pass-2027');
  await laptop.click('#recover-submit');
  await eventually(async () => /used already/.test(await laptop.textContent('#form-error')), 'a used code is refused');
  state.recovered = true;
});

test('the Account page ends one other device, then all others', { timeout: 60000 }, async () => {
  need('recovered');
  const { page } = state.phone;
  await signIn(state.laptop.page, state.username, THIRD_PASSWORD);
  await page.reload();
  let rows = await signInRows(page);
  assert.equal(rows.length, 2);
  await page.locator('#sign-ins .sign-in[data-current="false"] button').click();
  await page.locator('dialog [data-confirm]').click();
  await eventually(async () => (await signInRows(page)).length === 1, 'the ended sign-in leaves the list');
  assert.ok(await isSignedOut(state.laptop.page), 'the ended device is signed out');

  await signIn(state.laptop.page, state.username, THIRD_PASSWORD);
  await page.reload();
  rows = await signInRows(page);
  assert.equal(rows.length, 2);
  await page.click('#end-others');
  await page.locator('dialog [data-confirm]').click();
  await eventually(async () => (await signInRows(page)).length === 1, 'only this device is left');
  assert.ok(await isSignedOut(state.laptop.page), 'the other device is signed out');

  const phone = await browser.newContext({ viewport: PHONE, storageState: await state.phone.context.storageState() });
  try {
    const small = await phone.newPage();
    watchers.push(watchPage(small, 'account-phone'));
    await small.goto(`${stack.base}/account`);
    await signInRows(small);
    await screenshot(small, 'account-phone');
  } finally {
    await phone.close();
  }
});

test('no account page hit a script error, a CSP violation or a dialog', () => {
  assert.deepEqual(
    watchers.flatMap((w) => w.problems()),
    [],
  );
});
