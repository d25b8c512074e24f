// Field errors from the API (422 `fields`, 409 `username_taken`) shown beside their fields, with aria-invalid so
// screen readers announce them and focus moving to the first one.

import { ApiError, describeError } from './api.js';

export function clearErrors(form, formError) {
  for (const el of form.querySelectorAll('[data-field-error]')) el.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  if (formError) formError.textContent = '';
}

/** Put the error's field messages beside their inputs; returns true if at least one field matched. */
export function showFieldErrors(form, fields) {
  let first = null;
  for (const [name, why] of Object.entries(fields || {})) {
    const slot = form.querySelector(`[data-field-error="${CSS.escape(name)}"]`);
    const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (!slot) continue;
    slot.textContent = String(why);
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      if (!first) first = input;
    }
  }
  if (first) first.focus();
  return first !== null;
}

/** Show any error from `api` on a form: beside fields when it names them, otherwise in the form's error line. */
export function showError(form, formError, err) {
  if (err instanceof ApiError && showFieldErrors(form, err.fields)) {
    if (formError) formError.textContent = Object.keys(err.fields).length > 0 ? '' : describeError(err);
    return;
  }
  if (formError) formError.textContent = describeError(err);
}
