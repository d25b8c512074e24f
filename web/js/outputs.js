// Simulcast outputs in the studio: per stream, the other platforms the origin re-sends the live stream to (at most
// five). Each row shows its live status (polled every 3 s while the stream is live), can be switched on and off
// (also mid-stream) and removed after a confirmation; the form adds one. The target's stream key is write-only: the
// API only ever returns its last four characters, and the form clears it once sent.

import { api, describeError } from './api.js';
import { confirmAction } from './dialog.js';
import { fill, h } from './dom.js';
import { clearErrors, showError, showFieldErrors } from './form-errors.js';
import { ago, dateTime } from './format.js';

const MAX_OUTPUTS = 5;
const LIVE_POLL_MS = 3000;

const STATUS_TEXT = { idle: 'Idle', connecting: 'Connecting', live: 'Live', error: 'Error' };
const STATUS_BADGE = { idle: 'badge--offline', connecting: 'badge--pending', live: 'badge--live', error: 'badge--failed' };

function statusBadge(output) {
  return h('span', {
    class: `badge badge--status ${STATUS_BADGE[output.status] || ''}`,
    text: STATUS_TEXT[output.status] || output.status,
    data: { role: 'output-status' },
    attrs: { title: output.since ? `since ${dateTime(output.since)}` : null },
  });
}

/** The outputs section of one stream's studio card; `refresh()` reloads it, `setLive(bool)` paces its polling. */
export function outputsBox(stream) {
  const path = `/api/streams/${encodeURIComponent(stream.id)}/outputs`;
  const list = h('ul', { class: 'output-list', data: { role: 'outputs' } });
  const message = h('p', { class: 'output-list__message', attrs: { role: 'status' } });
  const n = stream.id;
  const field = (name, label, input) =>
    h(
      'div',
      { class: 'field field--grow' },
      h('label', { class: 'field__label', text: label, attrs: { for: `output-${name}-${n}` } }),
      input,
      h('p', { class: 'field__error', attrs: { id: `output-${name}-${n}-error` }, data: { fieldError: name } }),
    );
  const input = (name, attrs) =>
    h('input', { class: 'input', attrs: { id: `output-${name}-${n}`, name, 'aria-describedby': `output-${name}-${n}-error`, ...attrs } });
  const submit = h('button', { class: 'btn btn--primary btn--small', text: 'Add output', attrs: { type: 'submit' } });
  const formError = h('p', { class: 'form__error', attrs: { role: 'alert' } });
  const form = h(
    'form',
    { class: 'form form--inline output-form', attrs: { novalidate: true, 'aria-label': 'Add a simulcast output' } },
    field('name', 'Name', input('name', { maxlength: 60, required: true, placeholder: 'YouTube' })),
    field('url', 'Server URL', input('url', { maxlength: 512, required: true, placeholder: 'rtmps://a.rtmps.youtube.com/live2', inputmode: 'url', autocomplete: 'off', spellcheck: 'false' })),
    field('key', 'Stream key', input('key', { type: 'password', maxlength: 512, required: true, autocomplete: 'off', spellcheck: 'false' })),
    submit,
  );
  let outputs = [];
  let timer = null;
  // Bumped by every reload sent and every change made here: a reload answers only if nothing newer happened since it
  // was sent (a list fetched before an add, answered after it, would otherwise drop the output just added).
  let generation = 0;

  function row(output) {
    const toggle = h('input', {
      attrs: { type: 'checkbox', 'aria-label': `Send to ${output.name}` },
      props: { checked: output.enabled },
      data: { role: 'output-enabled' },
    });
    const remove = h('button', {
      class: 'btn btn--ghost btn--small btn--danger-text',
      text: 'Remove',
      attrs: { type: 'button', 'aria-label': `Remove ${output.name}` },
    });
    toggle.addEventListener('change', async () => {
      toggle.disabled = true;
      try {
        const body = await api(`${path}/${encodeURIComponent(output.id)}`, { method: 'PATCH', body: { enabled: toggle.checked } });
        Object.assign(output, body.output);
        generation += 1;
        message.textContent = output.enabled ? `${output.name} is on.` : `${output.name} is off.`;
        paint();
      } catch (err) {
        toggle.checked = !toggle.checked;
        message.textContent = describeError(err);
      } finally {
        toggle.disabled = false;
      }
    });
    remove.addEventListener('click', async () => {
      const ok = await confirmAction({
        title: `Remove “${output.name}”?`,
        body: 'If you are live, the stream stops going there within a few seconds. Its stream key is forgotten.',
        confirmLabel: 'Remove output',
      });
      if (!ok) return;
      remove.disabled = true;
      try {
        await api(`${path}/${encodeURIComponent(output.id)}`, { method: 'DELETE' });
        outputs = outputs.filter((o) => o.id !== output.id);
        generation += 1;
        message.textContent = `${output.name} removed.`;
        paint();
      } catch (err) {
        remove.disabled = false;
        message.textContent = describeError(err);
      }
    });
    const detail = output.status === 'error' || output.message ? output.message || '' : output.since ? `since ${ago(output.since)}` : '';
    return h(
      'li',
      { class: `output output--${output.status}`, data: { outputId: output.id } },
      h('label', { class: 'output__toggle' }, toggle, h('span', { class: 'output__name', text: output.name })),
      statusBadge(output),
      h('code', { class: 'output__url mono', text: output.url }),
      h('span', { class: 'output__hint mono', text: `key …${output.key_hint}` }),
      h('span', { class: 'output__detail', text: detail, data: { role: 'output-message' } }),
      remove,
    );
  }

  function paint() {
    fill(
      list,
      outputs.length
        ? outputs.map(row)
        : h('li', { class: 'empty-note', text: 'Add YouTube, Twitch or any RTMP(S) server: while you are live, your stream goes there too.' }),
    );
    const full = outputs.length >= MAX_OUTPUTS;
    submit.disabled = full;
    form.hidden = full;
  }

  async function refresh() {
    const mine = ++generation;
    try {
      const body = await api(path);
      if (mine !== generation) return;
      outputs = body.outputs || [];
      paint();
    } catch (err) {
      message.textContent = describeError(err);
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form, formError);
    const name = form.elements.name.value.trim();
    const url = form.elements.url.value.trim();
    const key = form.elements.key.value.trim();
    const missing = {};
    if (!name) missing.name = 'Name it, e.g. “YouTube”.';
    if (!url) missing.url = 'Paste the server URL from the platform (rtmp:// or rtmps://).';
    if (!key) missing.key = 'Paste the stream key from the platform.';
    if (Object.keys(missing).length) {
      showFieldErrors(form, missing);
      return;
    }
    submit.disabled = true;
    try {
      const body = await api(path, { method: 'POST', body: { name, url, key } });
      outputs.push(body.output);
      generation += 1;
      form.reset();
      message.textContent = `${body.output.name} added.`;
      paint();
    } catch (err) {
      showError(form, formError, err);
    } finally {
      submit.disabled = outputs.length >= MAX_OUTPUTS;
    }
  });

  function setLive(live) {
    if (live && !timer) timer = setInterval(refresh, LIVE_POLL_MS);
    if (!live && timer) {
      clearInterval(timer);
      timer = null;
    }
    refresh();
  }

  refresh();
  if (stream.status === 'live') setLive(true);
  return { box: h('div', { class: 'outputs' }, list, message, form, formError), refresh, setLive };
}
