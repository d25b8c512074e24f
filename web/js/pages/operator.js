// The Operator page: open reports, each closed with an act (end the stream and block its key, delete the
// broadcast or the chat message, suspend the stream's owner, or nothing), suspending and restoring a user by id, and
// the audit of every act. Every act asks why; the API refuses an act without a reason. Guests go to sign in; a
// signed-in non-operator sees that the page is for operators (the API answers them 403 `not_operator`).

import { api, ApiError, describeError } from '../api.js';
import { byId, fill, h } from '../dom.js';
import { clearErrors, showError, showFieldErrors } from '../form-errors.js';
import { dateTime } from '../format.js';
import { initHeader } from '../session.js';

const reportsList = byId('reports');
const reportsError = byId('reports-error');

const enc = encodeURIComponent;

/** What can be done about a report's target: [label, resolution, act(reason)]. */
function actsFor(report) {
  const target = report.target_id;
  const acts = [];
  if (report.target_type === 'stream') {
    acts.push(['End stream and block key', 'stream_ended', (reason) =>
      api(`/api/admin/streams/${enc(target)}/end`, { method: 'POST', body: { reason } })]);
    acts.push(['Suspend owner', 'user_suspended', async (reason) => {
      const { stream } = await api(`/api/streams/${enc(target)}`);
      await api(`/api/admin/users/${enc(stream.owner.id)}/suspend`, { method: 'POST', body: { reason } });
    }]);
  } else if (report.target_type === 'broadcast') {
    acts.push(['Delete broadcast', 'content_deleted', (reason) =>
      api(`/api/admin/broadcasts/${enc(target)}?reason=${enc(reason)}`, { method: 'DELETE' })]);
  } else if (report.target_type === 'clip') {
    acts.push(['Delete clip', 'content_deleted', (reason) =>
      api(`/api/admin/clips/${enc(target)}?reason=${enc(reason)}`, { method: 'DELETE' })]);
  } else if (report.target_type === 'chat_message') {
    const [stream, message] = target.split('/');
    acts.push(['Delete message', 'content_deleted', (reason) =>
      api(`/api/admin/streams/${enc(stream)}/messages/${enc(message)}?reason=${enc(reason)}`, { method: 'DELETE' })]);
  }
  acts.push(['Dismiss', 'no_action', async () => {}]);
  return acts;
}

function targetLink(report) {
  const label = `${report.target_type.replace('_', ' ')} ${report.target_id}`;
  if (report.target_type === 'clip') return h('a', { text: label, attrs: { href: `/clip/${enc(report.target_id)}` } });
  const stream = report.target_type === 'broadcast' ? null : report.target_id.split('/')[0];
  return stream ? h('a', { text: label, attrs: { href: `/s/${enc(stream)}` } }) : h('span', { text: label });
}

function reportRow(report) {
  const reason = h('input', {
    class: 'input input--small',
    attrs: { 'aria-label': `Why (report ${report.id})`, maxlength: '500', placeholder: 'Why (for the audit)' },
  });
  const error = h('p', { class: 'form__error', attrs: { role: 'alert' } });
  const buttons = actsFor(report).map(([label, resolution, act]) => {
    const b = h('button', {
      class: resolution === 'no_action' ? 'btn btn--ghost btn--small' : 'btn btn--danger btn--small',
      text: label,
      attrs: { type: 'button' },
    });
    b.addEventListener('click', async () => {
      error.textContent = '';
      const why = reason.value.trim();
      if (!why) {
        error.textContent = 'Say why first: it goes to the audit.';
        reason.focus();
        return;
      }
      buttons.forEach((x) => { x.disabled = true; });
      try {
        await act(why);
        await api(`/api/admin/reports/${enc(report.id)}/close`, { method: 'POST', body: { resolution, reason: why } });
        await Promise.all([loadReports(), loadAudit()]);
      } catch (err) {
        error.textContent = describeError(err);
        buttons.forEach((x) => { x.disabled = false; });
      }
    });
    return b;
  });
  return h(
    'li',
    { class: 'report', data: { reportId: report.id } },
    h('div', { class: 'report__what' },
      h('span', { class: 'badge badge--soft', text: report.reason }),
      targetLink(report),
      h('span', { class: 'report__when', text: `reported ${dateTime(report.created_at)}` })),
    reason,
    h('div', { class: 'report__acts' }, ...buttons),
    error,
  );
}

async function loadReports() {
  reportsError.textContent = '';
  try {
    const { reports } = await api('/api/admin/reports?status=open&limit=100');
    fill(reportsList, reports.map(reportRow));
    byId('reports-empty').hidden = reports.length > 0;
  } catch (err) {
    reportsError.textContent = describeError(err);
  }
}

async function loadAudit() {
  const error = byId('audit-error');
  error.textContent = '';
  try {
    const { entries } = await api('/api/admin/audit?limit=100');
    fill(byId('audit'), entries.map((e) => h('tr', { data: { auditId: String(e.id) } },
      h('td', { text: dateTime(e.at) }),
      h('td', { text: e.operator || e.operator_id }),
      h('td', { text: e.action }),
      h('td', { text: `${e.target_type} ${e.target_id}` }),
      h('td', { text: e.reason }))));
  } catch (err) {
    error.textContent = describeError(err);
  }
}

function userForm() {
  const form = byId('user-form');
  const formError = byId('user-error');
  const ok = byId('user-ok');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form, formError);
    ok.textContent = '';
    const action = event.submitter && event.submitter.value === 'unsuspend' ? 'unsuspend' : 'suspend';
    const id = form.elements.user_id.value.trim();
    const reason = form.elements.reason.value.trim();
    const local = {};
    if (!id) local.user_id = 'Enter the user id.';
    if (!reason) local.reason = 'Say why: it goes to the audit.';
    if (Object.keys(local).length > 0) {
      showFieldErrors(form, local);
      return;
    }
    try {
      await api(`/api/admin/users/${enc(id)}/${action}`, { method: 'POST', body: { reason } });
      ok.textContent = action === 'suspend' ? 'Suspended: signed out everywhere, publishing and chat refused.' : 'Suspension lifted.';
      form.reset();
      await loadAudit();
    } catch (err) {
      showError(form, formError, err);
    }
  });
}

async function main() {
  const user = await initHeader();
  if (!user) {
    location.replace(`/login?next=${encodeURIComponent('/operator')}`);
    return;
  }
  try {
    await api('/api/admin/audit?limit=1');
  } catch (err) {
    if (err instanceof ApiError && err.status === 403) {
      const denied = byId('operator-denied');
      denied.textContent = 'This page is for operators.';
      denied.hidden = false;
      for (const id of ['reports-panel', 'users-panel', 'audit-panel']) byId(id).hidden = true;
      return;
    }
  }
  userForm();
  await Promise.all([loadReports(), loadAudit()]);
}

main();
