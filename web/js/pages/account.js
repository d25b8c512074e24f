// The Account page: change the password (every other sign-in ends), the sign-ins list with "end" per row and
// "sign out everywhere else", recovery codes (shown once, never fetched again), the data export and deleting the
// account. Guests go to sign in.

import { api, ApiError, describeError } from '../api.js';
import { confirmAction, copyButton } from '../dialog.js';
import { byId, fill, h } from '../dom.js';
import { clearErrors, showError, showFieldErrors } from '../form-errors.js';
import { ago, dateTime } from '../format.js';
import { initHeader } from '../session.js';

const loginsList = byId('sign-ins');
const loginsError = byId('logins-error');
const endOthers = byId('end-others');

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

/** One sign-in: "Firefox · 203.0.113.0/24", when it started and was last used, and its end button. */
function signInRow(login) {
  const place = [login.browser, login.network || 'unknown network'].join(' · ');
  const used = login.last_used_at ? `last used ${ago(login.last_used_at)}` : 'not used since it started';
  const end = h('button', {
    class: 'btn btn--ghost btn--small',
    text: login.current ? 'Sign out here' : 'End',
    attrs: { type: 'button', 'aria-label': `End the sign-in from ${place}` },
  });
  end.addEventListener('click', async () => {
    const ok = await confirmAction({
      title: login.current ? 'Sign out on this device?' : 'End this sign-in?',
      body: login.current
        ? 'You will be signed out here.'
        : `The device using ${place} is signed out at once and its chat closes.`,
      confirmLabel: login.current ? 'Sign out' : 'End sign-in',
    });
    if (!ok) return;
    end.disabled = true;
    try {
      await api(`/api/me/logins/${encodeURIComponent(login.id)}`, { method: 'DELETE', refresh: !login.current });
      if (login.current) {
        location.assign('/');
        return;
      }
      await loadLogins();
    } catch (err) {
      loginsError.textContent = describeError(err);
      end.disabled = false;
    }
  });
  return h(
    'li',
    { class: 'sign-in', data: { loginId: login.id, current: login.current } },
    h(
      'div',
      { class: 'sign-in__what' },
      h('span', { class: 'sign-in__place', text: place }),
      login.current ? h('span', { class: 'badge badge--soft', text: 'This device' }) : null,
      h('span', {
        class: 'sign-in__when',
        text: `Signed in ${dateTime(login.created_at)}, ${used}`,
      }),
    ),
    end,
  );
}

async function loadLogins() {
  loginsError.textContent = '';
  try {
    const body = await api('/api/me/logins');
    const logins = body.logins || [];
    fill(loginsList, logins.map(signInRow));
    endOthers.disabled = logins.every((l) => l.current);
  } catch (err) {
    loginsError.textContent = describeError(err);
  }
}

function passwordForm() {
  const form = byId('password-form');
  const formError = byId('password-error');
  const ok = byId('password-ok');
  const submit = byId('password-submit');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form, formError);
    ok.textContent = '';
    const body = {
      current_password: form.elements.current_password.value,
      new_password: form.elements.new_password.value,
    };
    const local = {};
    if (!body.current_password) local.current_password = 'Enter your current password.';
    if (body.new_password.length < 8) local.new_password = 'Use at least 8 characters.';
    if (Object.keys(local).length > 0) {
      showFieldErrors(form, local);
      return;
    }
    submit.disabled = true;
    try {
      const answer = await api('/api/me/password', { method: 'POST', body });
      form.reset();
      const ended = answer && answer.ended ? answer.ended : 0;
      ok.textContent = ended
        ? `Password changed. ${plural(ended, 'other sign-in was', 'other sign-ins were')} ended.`
        : 'Password changed.';
      await loadLogins();
    } catch (err) {
      if (err instanceof ApiError && err.code === 'wrong_password') {
        showFieldErrors(form, { current_password: err.message });
      } else {
        showError(form, formError, err);
      }
    }
    submit.disabled = false;
  });
}

function endOthersButton() {
  endOthers.addEventListener('click', async () => {
    const ok = await confirmAction({
      title: 'Sign out everywhere else?',
      body: 'Every other device signed in to your account is signed out at once; this one stays.',
      confirmLabel: 'Sign out others',
    });
    if (!ok) return;
    endOthers.disabled = true;
    try {
      await api('/api/me/logins/end-others', { method: 'POST', body: {} });
    } catch (err) {
      loginsError.textContent = describeError(err);
    }
    await loadLogins();
  });
}

function codesForm() {
  const form = byId('codes-form');
  const formError = byId('codes-error');
  const submit = byId('codes-submit');
  const out = byId('codes-out');
  const list = byId('recovery-codes');
  let codes = [];
  byId('codes-copy').replaceWith(copyButton(() => codes.join('\n'), 'Copy codes'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form, formError);
    const password = form.elements.password.value;
    if (!password) {
      showFieldErrors(form, { password: 'Enter your password.' });
      return;
    }
    submit.disabled = true;
    try {
      const answer = await api('/api/me/recovery-codes', { method: 'POST', body: { password } });
      form.reset();
      codes = answer.codes || [];
      fill(list, codes.map((c) => h('li', { class: 'recovery-codes__code', text: c })));
      out.hidden = false;
      submit.textContent = 'Make new recovery codes (voids these)';
    } catch (err) {
      if (err instanceof ApiError && err.code === 'wrong_password') {
        showFieldErrors(form, { password: err.message });
      } else {
        showError(form, formError, err);
      }
    }
    submit.disabled = false;
  });
}

/** "Download my data": the export fetched like every call (refreshing the session if needed), saved as a file. */
function exportButton() {
  const button = byId('export');
  const error = byId('export-error');
  button.addEventListener('click', async () => {
    error.textContent = '';
    button.disabled = true;
    try {
      const data = await api('/api/me/export');
      const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' }));
      const a = h('a', { attrs: { href: url, download: 'sunnylive-export.json' } });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      error.textContent = describeError(err);
    }
    button.disabled = false;
  });
}

function deleteForm() {
  const form = byId('delete-form');
  const formError = byId('delete-error');
  const submit = byId('delete-submit');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form, formError);
    const password = form.elements.password.value;
    if (!password) {
      showFieldErrors(form, { password: 'Enter your password.' });
      return;
    }
    const ok = await confirmAction({
      title: 'Delete your account?',
      body: 'Your streams, keys, broadcasts and sign-ins go now. This cannot be undone.',
      confirmLabel: 'Delete account',
    });
    if (!ok) return;
    submit.disabled = true;
    try {
      await api('/api/me', { method: 'DELETE', body: { password } });
      location.assign('/');
      return;
    } catch (err) {
      if (err instanceof ApiError && err.code === 'wrong_password') {
        showFieldErrors(form, { password: err.message });
      } else {
        showError(form, formError, err);
      }
    }
    submit.disabled = false;
  });
}

async function main() {
  // Forms are wired before anything is awaited, so a click as soon as the page has loaded is never a native submit.
  passwordForm();
  endOthersButton();
  codesForm();
  exportButton();
  deleteForm();
  const user = await initHeader();
  if (!user) {
    location.replace(`/login?next=${encodeURIComponent('/account')}`);
    return;
  }
  byId('account-lead').textContent = `Signed in as ${user.username}. Your password, where you're signed in, and a way back in if you forget your password.`;
  await loadLogins();
}

main();
