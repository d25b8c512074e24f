// Recover an account with a recovery code: sets a new password, signs every device out and this one in
// (POST /api/auth/recover sets the session cookies like a login), then on to the Account page to make new codes.

import { api, ApiError } from '../api.js';
import { byId } from '../dom.js';
import { clearErrors, showError, showFieldErrors } from '../form-errors.js';
import { initHeader } from '../session.js';

const form = byId('recover-form');
const formError = byId('form-error');
const submit = byId('recover-submit');

async function onSubmit(event) {
  event.preventDefault();
  clearErrors(form, formError);
  const body = {
    username: form.elements.username.value.trim(),
    // People copy codes with spaces or stray whitespace; the API takes them with or without their dashes.
    code: form.elements.code.value.replace(/\s+/g, ''),
    new_password: form.elements.new_password.value,
  };
  const local = {};
  if (!body.username) local.username = 'Enter your username.';
  if (!body.code) local.code = 'Enter one of your recovery codes.';
  if (body.new_password.length < 8) local.new_password = 'Use at least 8 characters.';
  if (Object.keys(local).length > 0) {
    showFieldErrors(form, local);
    return;
  }
  submit.disabled = true;
  try {
    await api('/api/auth/recover', { method: 'POST', body, refresh: false });
    location.assign('/account');
    return;
  } catch (err) {
    if (err instanceof ApiError && err.code === 'invalid_credentials') {
      formError.textContent = 'That username and recovery code do not match, or the code was used already.';
    } else {
      showError(form, formError, err);
    }
  }
  submit.disabled = false;
}

form.addEventListener('submit', onSubmit);
initHeader();
