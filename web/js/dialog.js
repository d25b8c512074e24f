// Confirmation dialogs and the clipboard. <dialog> gives focus trapping, Escape to cancel and a backdrop for free,
// which keeps destructive actions (rotating a key, banning someone) keyboard friendly.

import { h } from './dom.js';

/** Ask before doing something that cannot be undone. Resolves true only on the confirm button. */
export function confirmAction({ title, body, confirmLabel, danger = true }) {
  return new Promise((resolve) => {
    const cancel = h('button', { class: 'btn btn--ghost', text: 'Cancel', attrs: { type: 'button', value: 'cancel' } });
    const confirm = h('button', {
      class: danger ? 'btn btn--danger' : 'btn btn--primary',
      text: confirmLabel,
      attrs: { type: 'button', value: 'confirm', 'data-confirm': true },
    });
    const titleId = `dialog-title-${Math.random().toString(36).slice(2)}`;
    const dialog = h(
      'dialog',
      { class: 'dialog', attrs: { 'aria-labelledby': titleId } },
      h('h2', { class: 'dialog__title', text: title, attrs: { id: titleId } }),
      h('p', { class: 'dialog__body', text: body }),
      h('div', { class: 'dialog__actions' }, cancel, confirm),
    );
    let answer = false;
    cancel.addEventListener('click', () => dialog.close());
    confirm.addEventListener('click', () => {
      answer = true;
      dialog.close();
    });
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(answer);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** Copy text; falls back to a hidden textarea where the async clipboard is unavailable (non-secure contexts). */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Permission denied (e.g. an unfocused document): try the old way below.
    }
  }
  const area = h('textarea', { class: 'visually-hidden', attrs: { readonly: true, 'aria-hidden': 'true' } });
  area.value = text;
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

/**
 * A copy button that says "Copied" for a moment. `getText` (may be async) is called on click, so a secret is
 * fetched only when wanted and never has to sit in the DOM.
 */
export function copyButton(getText, label = 'Copy') {
  const button = h('button', { class: 'btn btn--ghost btn--small', text: label, attrs: { type: 'button' } });
  button.addEventListener('click', async () => {
    let ok = false;
    try {
      ok = await copyText(await getText());
    } catch {
      ok = false;
    }
    button.textContent = ok ? 'Copied' : 'Copy failed';
    setTimeout(() => {
      button.textContent = label;
    }, 1600);
  });
  return button;
}
