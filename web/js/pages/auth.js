// Sign in and create account. The API sets the HttpOnly sl_access / sl_refresh cookies; this page only sends the
// form and goes on to `?next=` (same-site paths only) or the studio.

import { api, ApiError } from '../api.js';
import { byId, safeNextPath } from '../dom.js';
import { clearErrors, showError, showFieldErrors } from '../form-errors.js';
import { initHeader } from '../session.js';

const form = byId('auth-form');
const mode = form.dataset.mode === 'register' ? 'register' : 'login';
const formError = byId('form-error');
const submit = byId('auth-submit');
const next = safeNextPath(new URLSearchParams(location.search).get('next'), '/studio');

function keepNextOnSwitch() {
  const link = byId('switch-link');
  const raw = new URLSearchParams(location.search).get('next');
  if (raw) link.href = `${link.pathname}?next=${encodeURIComponent(safeNextPath(raw, '/studio'))}`;
}

function passwordToggle() {
  const toggle = byId('password-toggle');
  const input = byId('password');
  toggle.addEventListener('click', () => {
    const show = input.type === 'password';
    input.type = show ? 'text' : 'password';
    toggle.textContent = show ? 'Hide' : 'Show';
    toggle.setAttribute('aria-pressed', String(show));
  });
}

/** Checks we can make before asking the server; the server checks again and its words win. */
function localErrors(values) {
  const fields = {};
  if (!values.username) fields.username = 'Enter your username.';
  else if (mode === 'register' && !/^[A-Za-z0-9_.-]{3,32}$/.test(values.username)) {
    fields.username = 'Use 3–32 letters, numbers, _ . or -.';
  }
  if (!values.password) fields.password = 'Enter your password.';
  else if (mode === 'register' && values.password.length < 8) fields.password = 'Use at least 8 characters.';
  return fields;
}

async function onSubmit(event) {
  event.preventDefault();
  clearErrors(form, formError);
  const values = {
    username: form.elements.username.value.trim(),
    password: form.elements.password.value,
  };
  if (mode === 'register') {
    const email = form.elements.email.value.trim();
    if (email) values.email = email;
  }
  const local = localErrors(values);
  if (Object.keys(local).length > 0) {
    showFieldErrors(form, local);
    return;
  }
  submit.disabled = true;
  submit.textContent = mode === 'login' ? 'Signing in…' : 'Creating account…';
  try {
    await api(`/api/auth/${mode}`, { method: 'POST', body: values, refresh: false });
    location.assign(next);
    return;
  } catch (err) {
    if (err instanceof ApiError && err.code === 'username_taken') {
      showFieldErrors(form, { username: err.message || 'That username is taken.' });
    } else if (err instanceof ApiError && err.code === 'invalid_credentials') {
      formError.textContent = 'That username and password do not match.';
      form.elements.password.focus();
    } else {
      showError(form, formError, err);
    }
  }
  submit.disabled = false;
  submit.textContent = mode === 'login' ? 'Sign in' : 'Create account';
}

async function main() {
  keepNextOnSwitch();
  passwordToggle();
  form.addEventListener('submit', onSubmit);
  // Already signed in: no need to sign in again.
  if (await initHeader()) location.replace(next);
}

main();
