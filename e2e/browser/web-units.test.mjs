// Unit tests for the web client's pure helpers (money, times, safe navigation targets), run by node:test with the
// browser suite; they need no stack and no browser.

import assert from 'node:assert/strict';
import { test } from 'node:test';

// dom.js reads `location` to resolve relative URLs; give it the page it would run on.
globalThis.location = new URL('http://127.0.0.1:8787/s/abc');

const { clockDuration, parseRupiah, rupiah, durationSince, liveFor, spokenDuration, viewers } = await import('../../web/js/format.js');
const { safeHttpUrl, safeNextPath, hueFor, warmHueFor } = await import('../../web/js/dom.js');
const { framesIn } = await import('../../web/js/live-socket.js');
const { holdBack } = await import('../../web/js/watch/player.js');

test('amounts typed the Indonesian way, with or without separators, become whole rupiah', () => {
  assert.equal(parseRupiah('50.000'), 50000);
  assert.equal(parseRupiah('Rp 25,000'), 25000);
  assert.equal(parseRupiah('1000'), 1000);
  assert.equal(parseRupiah(''), null);
  assert.equal(parseRupiah('abc'), null);
  assert.equal(parseRupiah('9'.repeat(13)), null, 'absurdly long input is refused, not rounded');
});

test('rupiah are written with dots for thousands and no decimals', () => {
  assert.equal(rupiah(25000).replace(/\s/g, ' '), 'Rp 25.000');
  assert.equal(rupiah(100000000).replace(/\s/g, ' '), 'Rp 100.000.000');
});

test('live durations read naturally', () => {
  const now = Date.parse('2026-11-25T12:00:00Z');
  assert.equal(durationSince('2026-11-25T11:59:40Z', now), 'just now');
  assert.equal(durationSince('2026-11-25T11:48:00Z', now), '12 min');
  assert.equal(durationSince('2026-11-25T09:55:00Z', now), '2 h 5 min');
  assert.equal(liveFor('2026-11-25T11:59:40Z', now), 'Just went live');
  assert.equal(liveFor('2026-11-25T11:00:00Z', now), 'Live for 1 h');
  assert.equal(durationSince('not a date', now), '');
  assert.equal(viewers(1), '1 viewer');
  assert.equal(viewers(1234), '1.2K viewers');
});

test('only http(s) payment pages are followed', () => {
  assert.equal(safeHttpUrl('http://127.0.0.1:8790/snap/v4/redirection/t'), 'http://127.0.0.1:8790/snap/v4/redirection/t');
  assert.equal(safeHttpUrl('https://app.sandbox.midtrans.com/snap/v4/redirection/t'), 'https://app.sandbox.midtrans.com/snap/v4/redirection/t');
  assert.equal(safeHttpUrl('javascript:alert(1)'), null);
  assert.equal(safeHttpUrl('data:text/html,<script>alert(1)</script>'), null);
});

test('after signing in, only same-site paths are returned to', () => {
  assert.equal(safeNextPath('/s/abc?x=1'), '/s/abc?x=1');
  assert.equal(safeNextPath('//evil.example/'), '/');
  assert.equal(safeNextPath('/\\evil.example'), '/');
  assert.equal(safeNextPath('https://evil.example/'), '/');
  assert.equal(safeNextPath(null, '/studio'), '/studio');
  // What the browser makes of them, not what the raw string starts with (issue 12, item 3).
  assert.equal(safeNextPath('/\t/evil.example'), '/');
  assert.equal(safeNextPath('/\n/evil.example'), '/');
  assert.equal(safeNextPath('/\t\\evil.example'), '/');
  assert.equal(safeNextPath('javascript:alert(1)'), '/');
  assert.equal(safeNextPath('/studio?tab=keys#top'), '/studio?tab=keys#top');
});

test('colours derived from ids are stable, and stream tiles stay in the warm range', () => {
  assert.equal(hueFor('abc'), hueFor('abc'));
  for (const id of ['a', 'rmeimrep3vrb2m45', 'zzzzzzzzzzzzzzzz', 'x1']) {
    const hue = warmHueFor(id);
    assert.ok(hue >= -25 && hue <= 45, `${id} -> ${hue}`);
  }
});

test('broadcast lengths read like a player clock, and spelled out for screen readers', () => {
  assert.equal(clockDuration(0), '0:00');
  assert.equal(clockDuration(65.4), '1:05');
  assert.equal(clockDuration(3723), '1:02:03');
  assert.equal(clockDuration('nonsense'), '0:00');
  assert.equal(spokenDuration(0), '0 s');
  assert.equal(spokenDuration(65), '1 min 5 s');
  assert.equal(spokenDuration(3600), '1 h');
  assert.equal(spokenDuration(3723), '1 h 2 min 3 s');
});

test('a batch frame is unpacked into its frames, in order, and anything else is one frame', () => {
  const chat = (id) => ({ type: 'chat', id, text: `m${id}` });
  assert.deepEqual(framesIn({ type: 'batch', frames: [chat('1'), { type: 'donation', id: '2' }, chat('3')] }).map((f) => f.id), ['1', '2', '3']);
  assert.deepEqual(framesIn(chat('7')), [chat('7')]);
  assert.deepEqual(framesIn({ type: 'batch', frames: [null, { id: '1' }, { type: 'batch', frames: [chat('2')] }, chat('3')] }), [chat('3')]);
  assert.deepEqual(framesIn({ type: 'batch' }), []);
  assert.deepEqual(framesIn(null), []);
  assert.deepEqual(framesIn(42), []);
});

test('the live player holds back one segment plus 3 s, never more than three segments', () => {
  assert.equal(holdBack(1), 3, '1-s segments: three of them');
  assert.equal(holdBack(2), 5, '2-s segments: 5 s, not 6');
  assert.equal(holdBack(6), 9);
});
