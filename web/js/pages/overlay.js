// The OBS browser-source overlay /overlay/{id}: a transparent page that shows each paid donation as an alert for
// a few seconds, one after another. It stays connected for hours (LiveSocket's backoff), and after a reconnect it
// also shows donations that arrived while it was away (found in the welcome history) without repeating old ones.
// A donation inside a busy room's `batch` frame reaches onFrame on its own: LiveSocket unpacks batches.

import { h, idFromPath } from '../dom.js';
import { rupiah } from '../format.js';
import { chatUrl, LiveSocket } from '../live-socket.js';

const params = new URLSearchParams(location.search);
const SHOW_MS = Math.min(30, Math.max(3, Number.parseInt(params.get('seconds') || '', 10) || 7)) * 1000;
const GAP_MS = 600;
const MAX_SEEN = 2000;

const stage = document.getElementById('overlay');
const status = document.getElementById('overlay-status');
const seen = new Set();
const queue = [];
let showing = false;
let welcomedOnce = false;

function remember(id) {
  seen.add(id);
  if (seen.size > MAX_SEEN) seen.delete(seen.values().next().value);
}

function isDonation(item) {
  return item && (item.type === 'donation' || (item.amount !== undefined && item.donor !== undefined));
}

function enqueue(donation) {
  if (!donation.id || seen.has(donation.id)) return;
  remember(donation.id);
  queue.push(donation);
  if (!showing) next();
}

function next() {
  const donation = queue.shift();
  if (!donation) {
    showing = false;
    return;
  }
  showing = true;
  const alert = h(
    'div',
    { class: 'alert', attrs: { role: 'alert' }, data: { id: donation.id } },
    h('div', { class: 'alert__burst', attrs: { 'aria-hidden': 'true' } }),
    h(
      'p',
      { class: 'alert__headline' },
      h('span', { class: 'alert__donor', text: donation.donor || 'Someone' }),
      // A guest's name is whatever they typed: say so on stream, so nobody reads it as an account.
      donation.guest ? h('span', { class: 'alert__guest', text: ' (guest)' }) : null,
      h('span', { class: 'alert__verb', text: ' sent ' }),
      h('span', { class: 'alert__amount', text: rupiah(donation.amount) }),
    ),
    donation.message ? h('p', { class: 'alert__message', text: donation.message }) : null,
  );
  stage.replaceChildren(alert);
  setTimeout(() => {
    alert.classList.add('alert--leaving');
    setTimeout(() => {
      alert.remove();
      setTimeout(next, GAP_MS);
    }, 500);
  }, SHOW_MS);
}

function onFrame(frame) {
  if (frame.type === 'welcome') {
    document.body.dataset.connected = 'true';
    const history = Array.isArray(frame.history) ? frame.history.filter(isDonation) : [];
    if (!welcomedOnce) {
      // Donations from before the overlay was opened were alerted back then.
      for (const d of history) if (d.id) remember(d.id);
      welcomedOnce = true;
    } else {
      for (const d of history) enqueue(d);
    }
    status.hidden = true;
  } else if (frame.type === 'donation') {
    enqueue(frame);
  }
}

const DEBUG = params.has('debug');

function onState(state, detail) {
  // Nothing but alerts may ever appear on stream; `?debug=1` shows the connection state for setting it up.
  if (state !== 'open') document.body.dataset.connected = 'false';
  status.hidden = !DEBUG || state === 'open';
  status.dataset.state = state;
  status.textContent = state === 'waiting' ? `reconnecting in ${Math.round(detail.delay / 1000)} s` : 'connecting';
}

const streamId = idFromPath(2);
if (streamId) {
  new LiveSocket(chatUrl(streamId), { frame: onFrame, state: onState }).start();
} else {
  status.hidden = false;
  status.textContent = 'This overlay link is incomplete.';
}
