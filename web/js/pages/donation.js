// The donation result page /donations/{order_id}, where Snap sends the donor back after paying. The query string
// Snap appends (transaction_status=...) is ignored on purpose: anyone can type it. Only the API's status counts,
// polled until it settles, so this page never says "paid" before our webhook handler has recorded the payment.

import { api, ApiError } from '../api.js';
import { byId, idFromPath } from '../dom.js';
import { rupiah } from '../format.js';
import { initHeader } from '../session.js';

const SETTLED = new Set(['paid', 'failed', 'refunded']);
const GIVE_UP_AFTER_MS = 10 * 60 * 1000;

const STATES = {
  pending: {
    title: 'Waiting for the payment to go through…',
    text: 'Payments usually settle within a few seconds. This page updates by itself; you can keep it open.',
  },
  challenge: {
    title: 'Your payment is being reviewed',
    text: 'The payment provider is double-checking this payment. That can take a little while; we will update this page.',
  },
  paid: {
    title: 'Thank you! Your donation went through.',
    text: 'It has been shown in the chat and on stream. You just made someone’s day brighter.',
  },
  failed: {
    title: 'The payment did not go through',
    text: 'Nothing was charged. You can go back to the stream and try again.',
  },
  refunded: {
    title: 'This donation was refunded',
    text: 'The payment was returned to you.',
  },
};

function show(state, overrides = {}) {
  const copy = { ...(STATES[state] || STATES.pending), ...overrides };
  byId('receipt-icon').dataset.state = state;
  byId('receipt-title').textContent = copy.title;
  byId('receipt-text').textContent = copy.text;
  byId('receipt').setAttribute('aria-busy', String(!SETTLED.has(state)));
  document.title = `${copy.title} · Sunnylive`;
}

function details(donation) {
  byId('receipt-details').hidden = false;
  byId('receipt-amount').textContent = rupiah(donation.amount);
  byId('receipt-donor').textContent = donation.donor || 'Anonymous';
  byId('receipt-message').textContent = donation.message || '';
  byId('receipt-message-row').hidden = !donation.message;
  byId('receipt-order').textContent = donation.order_id;
  const streamLink = byId('receipt-stream');
  const back = byId('receipt-back');
  if (donation.stream_id) {
    const href = `/s/${encodeURIComponent(donation.stream_id)}`;
    streamLink.href = href;
    back.href = href;
  }
}

async function streamTitle(streamId) {
  try {
    const body = await api(`/api/streams/${encodeURIComponent(streamId)}`);
    byId('receipt-stream').textContent = body.stream.title;
  } catch {
    byId('receipt-stream').textContent = 'the stream';
  }
}

async function main() {
  initHeader();
  const orderId = idFromPath(2);
  const refresh = byId('receipt-refresh');
  if (!orderId) {
    show('failed', { title: 'We could not find this donation', text: 'The link looks incomplete.' });
    byId('receipt-icon').dataset.state = 'unknown';
    return;
  }
  const started = Date.now();
  let delay = 1500;
  let timer = null;
  let titled = false;

  async function check() {
    clearTimeout(timer);
    let donation;
    try {
      donation = (await api(`/api/donations/${encodeURIComponent(orderId)}`)).donation;
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        show('failed', { title: 'We could not find this donation', text: 'The link may be mistyped. If you paid, the streamer still receives it.' });
        byId('receipt-icon').dataset.state = 'unknown';
        return;
      }
      // A network blip is not a verdict: keep the current message and try again.
      schedule();
      return;
    }
    details(donation);
    if (!titled && donation.stream_id) {
      titled = true;
      streamTitle(donation.stream_id);
    }
    const state = STATES[donation.status] ? donation.status : 'pending';
    show(state);
    if (!SETTLED.has(state)) schedule();
  }

  function schedule() {
    if (Date.now() - started > GIVE_UP_AFTER_MS) {
      show('pending', {
        title: 'Still waiting for the payment provider',
        text: 'This is taking longer than usual. If you paid, the donation is recorded as soon as the provider confirms it.',
      });
      refresh.hidden = false;
      return;
    }
    timer = setTimeout(check, delay);
    delay = Math.min(10000, Math.round(delay * 1.4));
  }

  refresh.addEventListener('click', () => {
    delay = 1500;
    refresh.hidden = true;
    check();
  });
  check();
}

main();
