// Fault suite, browser half (run by e2e/tests/suite/faults.rs, never by `node --test e2e/browser/`: the name does not
// end in .test.mjs). A viewer's watch page is open while the Rust side SIGKILLs `wrangler dev` and starts it again;
// the chat socket must reconnect with backoff on its own and show every message exactly once: the ones from before
// the crash and the ones sent after the restart, which the page missed while it was reconnecting.
//
// Protocol with the Rust side, one line each way: this script prints `READY` once chat is connected and the
// `before` messages show; the Rust side kills and restarts the worker, sends the `after` messages, then writes
// `SENT <n>` on stdin; this script exits 0 when the page shows everything once, or 1 with what it saw.

import readline from 'node:readline';
import { eventually, launchBrowser, stackFromEnv, watchPage } from './support.mjs';

const stack = stackFromEnv();
const streamId = process.env.SUNNYLIVE_FAULT_STREAM;
const before = JSON.parse(process.env.SUNNYLIVE_FAULT_BEFORE || '[]');
const after = JSON.parse(process.env.SUNNYLIVE_FAULT_AFTER || '[]');

const lines = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));

const texts = (page) => page.$$eval('#chat-list .msg__text', (els) => els.map((el) => el.textContent));
const connected = (page) => page.$eval('#chat', (el) => el.dataset.connected).catch(() => null);

function countOf(list) {
  const counts = new Map();
  for (const t of list) counts.set(t, (counts.get(t) || 0) + 1);
  return counts;
}

const browser = await launchBrowser();
let code = 1;
try {
  const page = await browser.newPage();
  const watch = watchPage(page, 'viewer');
  await page.goto(`${stack.base}/s/${streamId}`);
  await page.locator('#chat[data-connected="true"]').waitFor({ timeout: 30000 });
  await eventually(async () => before.every((t) => texts(page).then((l) => l.includes(t))), 'the messages from before the crash show', { timeoutMs: 20000 });
  console.log('READY');

  // Meanwhile the worker dies: the page must notice (not connected) and come back by itself.
  let sawDisconnect = false;
  const poll = setInterval(async () => {
    if ((await connected(page)) !== 'true') sawDisconnect = true;
  }, 100);
  const sent = await nextLine();
  clearInterval(poll);
  if (!sent.startsWith('SENT')) throw new Error(`unexpected line from the harness: ${sent}`);

  await page.locator('#chat[data-connected="true"]').waitFor({ timeout: 60000 });
  const want = [...before, ...after];
  await eventually(
    async () => {
      const counts = countOf(await texts(page));
      return want.every((t) => counts.get(t) === 1);
    },
    'every message exactly once after the reconnect',
    { timeoutMs: 30000 },
  ).catch(async (e) => {
    const counts = countOf(await texts(page));
    const wrong = want.filter((t) => counts.get(t) !== 1).map((t) => `${JSON.stringify(t)} x${counts.get(t) || 0}`);
    throw new Error(`${e.message}: ${wrong.join(', ')}`);
  });
  const counts = countOf(await texts(page));
  const doubled = [...counts].filter(([, n]) => n > 1).map(([t, n]) => `${JSON.stringify(t)} x${n}`);
  if (doubled.length > 0) throw new Error(`messages shown twice: ${doubled.join(', ')}`);
  if (!sawDisconnect) throw new Error('the page never showed the chat as disconnected while the worker was down');
  const problems = watch.problems().filter((p) => !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(p));
  if (problems.length > 0) throw new Error(`page problems: ${problems.join('; ')}`);
  console.log(`PASS ${want.length} messages once each`);
  code = 0;
} catch (e) {
  console.log(`FAIL ${e.message}`);
} finally {
  await browser.close().catch(() => {});
  lines.close();
}
process.exit(code);
