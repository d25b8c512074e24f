// The donate panel: rupiah presets or a free amount, an optional message, a name for guests. The API creates the
// Midtrans Snap transaction and answers a redirect_url; the viewer goes there to pay and comes back to
// /donations/{order_id}, which alone says whether the payment went through.

import { api } from '../api.js';
import { byId, h, safeHttpUrl } from '../dom.js';
import { clearErrors, showError, showFieldErrors } from '../form-errors.js';
import { parseRupiah, rupiah } from '../format.js';

const PRESETS = [10000, 25000, 50000, 100000];
const MIN = 1000;
const MAX = 100000000;

export function createDonate({ streamId, user }) {
  const form = byId('donate-form');
  const chips = byId('amount-chips');
  const amountInput = byId('donate-amount');
  const nameField = byId('donate-name-field');
  const donateAs = byId('donate-as');
  const message = byId('donate-message');
  const count = byId('donate-message-count');
  const submit = byId('donate-submit');
  const formError = byId('donate-error');

  const chipButtons = PRESETS.map((amount) =>
    h('button', {
      class: 'chip',
      text: rupiah(amount),
      attrs: { type: 'button', 'aria-pressed': 'false' },
      data: { amount },
      on: {
        click: () => {
          amountInput.value = new Intl.NumberFormat('id-ID').format(amount);
          sync();
        },
      },
    }),
  );
  chips.append(...chipButtons);

  if (user) {
    nameField.hidden = true;
    donateAs.hidden = false;
    donateAs.textContent = `Donating as ${user.username}.`;
  }

  function sync() {
    const amount = parseRupiah(amountInput.value);
    for (const chip of chipButtons) chip.setAttribute('aria-pressed', String(Number(chip.dataset.amount) === amount));
    submit.textContent = amount && amount >= MIN ? `Donate ${rupiah(amount)}` : 'Donate';
  }

  amountInput.addEventListener('input', sync);
  message.addEventListener('input', () => {
    count.textContent = `${message.value.length} / 200`;
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form, formError);
    const amount = parseRupiah(amountInput.value);
    if (amount === null) {
      showFieldErrors(form, { amount: 'Pick an amount or type one.' });
      return;
    }
    if (amount < MIN || amount > MAX) {
      showFieldErrors(form, { amount: `Donations go from ${rupiah(MIN)} to ${rupiah(MAX)}.` });
      return;
    }
    const body = { amount };
    const text = message.value.trim();
    if (text) body.message = text;
    const name = form.elements.donor_name.value.trim();
    if (!user && name) body.donor_name = name;

    submit.disabled = true;
    const label = submit.textContent;
    submit.textContent = 'Opening payment…';
    try {
      const created = await api(`/api/streams/${encodeURIComponent(streamId)}/donations`, { method: 'POST', body });
      const target = created && safeHttpUrl(created.redirect_url);
      if (!target) throw new Error('no payment page');
      location.assign(target);
      return;
    } catch (err) {
      if (err && err.code === 'payment_gateway_unavailable') {
        formError.textContent = 'The payment provider is not answering right now. Nothing was charged; please try again in a minute.';
      } else if (err && err.name === 'ApiError') {
        showError(form, formError, err);
      } else {
        formError.textContent = 'We could not open the payment page. Nothing was charged; please try again.';
      }
    }
    submit.disabled = false;
    submit.textContent = label;
  });

  sync();
}
