// The chat panel of the watch page, speaking the room protocol of docs/API.md: `welcome` (history, role, viewers,
// status, slow mode) then live `chat`, `donation`, `presence`, `status`, `deleted`, `slow_mode` and `error` frames
// (a busy room's `batch` frames are unpacked by LiveSocket, so each message arrives here on its own, in order).
// Message text is only ever set with textContent. Hosts get per-message moderation (delete, timeout, ban) and
// a slow-mode selector; the room enforces all of it server-side, these controls only send the frames.

import { api } from '../api.js';
import { confirmAction } from '../dialog.js';
import { byId, h, hueFor } from '../dom.js';
import { clock, compact, rupiah } from '../format.js';
import { chatUrl, LiveSocket } from '../live-socket.js';

const MAX_MESSAGES = 400;
const MAX_CHARS = 500;
const HISTORY_PAGE = 50;

const FRIENDLY_ERRORS = {
  rate_limited: 'You are sending messages a little fast. Take a breath and try again in a moment.',
  too_long: `Messages can be up to ${MAX_CHARS} characters.`,
  empty: 'Type something first.',
  bad_frame: 'That message could not be sent. Please try again.',
  not_authenticated: 'Your session ended. Sign in again to chat.',
  not_delivered: 'Your message did not get through. Please send it again.',
};

function isDonation(item) {
  return item && (item.type === 'donation' || (item.amount !== undefined && item.donor !== undefined));
}

export function createChat({ streamId, ownerId, user, onStatus, onPresence, onDonation = () => {} }) {
  const root = byId('chat');
  const list = byId('chat-list');
  const scroller = byId('chat-scroll');
  const form = byId('chat-form');
  const input = byId('chat-input');
  const sendButton = byId('chat-send');
  const notice = byId('chat-notice');
  const presence = byId('chat-presence');
  const slowBadge = byId('chat-slow');
  const slowControl = byId('slow-control');
  const slowSelect = byId('slow-select');
  const signin = byId('chat-signin');
  const signinLink = byId('chat-signin-link');
  const connection = byId('chat-connection');
  const jump = byId('chat-jump');
  const earlier = byId('chat-earlier');

  let role = 'anonymous';
  let you = null;
  let slowSeconds = 0;
  let cooldownTimer = null;
  let noticeTimer = null;
  let lastSent = null;
  let reauthTried = false;
  let welcomed = false;
  const rendered = new Map();

  signinLink.href = `/login?next=${encodeURIComponent(location.pathname)}`;

  // ---- rendering -------------------------------------------------------------------------------------------

  function nearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
  }

  function scrollToBottom() {
    scroller.scrollTop = scroller.scrollHeight;
    jump.hidden = true;
  }

  function trim() {
    while (list.children.length > MAX_MESSAGES) {
      const first = list.firstElementChild;
      if (first && first.dataset.id) rendered.delete(first.dataset.id);
      first.remove();
    }
  }

  function nameTag(userObj) {
    const name = h('span', { class: 'msg__name', text: userObj.username || 'someone' });
    name.style.setProperty('--name-hue', String(hueFor(userObj.id || userObj.username || '')));
    const isHost = ownerId && userObj.id === ownerId;
    return [isHost ? h('span', { class: 'badge badge--host', text: 'Host' }) : null, name];
  }

  function moderation(item) {
    const author = item.user || {};
    const isSelf = you && author.id === you.id;
    const actions = h('div', { class: 'msg__actions', attrs: { hidden: true } });
    const toggle = h('button', {
      class: 'msg__more',
      text: '⋯',
      attrs: { type: 'button', 'aria-expanded': 'false', 'aria-label': `Moderate message from ${author.username || 'someone'}` },
    });
    toggle.addEventListener('click', () => {
      const open = actions.hidden;
      actions.hidden = !open;
      toggle.setAttribute('aria-expanded', String(open));
    });
    const action = (label, handler, extra = '') =>
      h('button', { class: `btn btn--small btn--ghost ${extra}`, text: label, attrs: { type: 'button' }, on: { click: handler } });
    actions.appendChild(action('Delete', () => send({ type: 'delete', id: item.id }, 'Message deleted.')));
    if (!isSelf && author.id) {
      actions.appendChild(
        action('Timeout 5 min', () => send({ type: 'timeout', user_id: author.id, seconds: 300 }, `${author.username} is timed out for 5 minutes.`)),
      );
      actions.appendChild(
        action(
          'Ban',
          async () => {
            const ok = await confirmAction({
              title: `Ban ${author.username}?`,
              body: 'They will not be able to chat in your room again.',
              confirmLabel: 'Ban',
            });
            if (ok) send({ type: 'ban', user_id: author.id }, `${author.username} is banned from this chat.`);
          },
          'btn--danger-text',
        ),
      );
    }
    return [toggle, actions];
  }

  function chatItem(item) {
    const author = item.user || {};
    const li = h(
      'li',
      { class: `msg${ownerId && author.id === ownerId ? ' msg--host' : ''}`, data: { id: item.id || '' } },
      h('time', { class: 'msg__time', text: clock(item.ts), attrs: { datetime: item.ts || '' } }),
      h('span', { class: 'msg__line' }, nameTag(author), h('span', { class: 'msg__text', text: item.text })),
      role === 'host' && item.id ? moderation(item) : null,
    );
    return li;
  }

  function donationItem(item) {
    return h(
      'li',
      { class: 'msg msg--donation', data: { id: item.id || '', kind: 'donation' } },
      h(
        'div',
        { class: 'donation-card' },
        h('span', { class: 'donation-card__amount', text: rupiah(item.amount) }),
        h(
          'span',
          { class: 'donation-card__who' },
          h('strong', { text: item.donor || 'Someone' }),
          // A guest's name is whatever they typed: say so, so nobody reads it as an account.
          item.guest ? h('span', { class: 'donation-card__guest', text: ' (guest)' }) : null,
          ' sent some sunshine',
        ),
        item.message ? h('span', { class: 'donation-card__message', text: item.message }) : null,
      ),
    );
  }

  function systemItem(text) {
    return h('li', { class: 'msg msg--system', text });
  }

  function render(item) {
    if (item.id && rendered.has(item.id)) return null;
    const el = isDonation(item) ? donationItem(item) : chatItem(item);
    if (item.id) rendered.set(item.id, el);
    return el;
  }

  function appendLive(el) {
    if (!el) return;
    const stick = nearBottom();
    list.appendChild(el);
    trim();
    if (stick) scrollToBottom();
    else jump.hidden = false;
  }

  // ---- notices and state -----------------------------------------------------------------------------------

  function say(text, { tone = 'info', sticky = false, link = null } = {}) {
    clearTimeout(noticeTimer);
    notice.replaceChildren(text);
    if (link) notice.append(' ', h('a', { text: link.text, attrs: { href: link.href } }));
    notice.dataset.tone = tone;
    if (!sticky) {
      noticeTimer = setTimeout(() => {
        notice.replaceChildren();
      }, 7000);
    }
  }

  function setSlow(seconds) {
    slowSeconds = Math.max(0, Number(seconds) || 0);
    slowBadge.hidden = slowSeconds === 0;
    slowBadge.textContent = slowSeconds ? `Slow mode · ${slowSeconds} s` : '';
    if (role === 'host') slowSelect.value = [...slowSelect.options].some((o) => o.value === String(slowSeconds)) ? String(slowSeconds) : slowSelect.value;
  }

  function setRole(nextRole) {
    role = nextRole;
    const canChat = role === 'host' || role === 'viewer';
    form.hidden = !canChat;
    signin.hidden = canChat;
    slowControl.hidden = role !== 'host';
  }

  function cooldown(seconds) {
    if (seconds <= 0 || role === 'host') return;
    clearInterval(cooldownTimer);
    let left = seconds;
    sendButton.disabled = true;
    sendButton.textContent = `${left}s`;
    cooldownTimer = setInterval(() => {
      left -= 1;
      if (left <= 0) {
        clearInterval(cooldownTimer);
        sendButton.disabled = false;
        sendButton.textContent = 'Send';
      } else {
        sendButton.textContent = `${left}s`;
      }
    }, 1000);
  }

  function send(frame, confirmation) {
    if (!socket.send(frame)) {
      say('Chat is reconnecting. Try again in a moment.', { tone: 'warn' });
      return false;
    }
    if (confirmation) say(confirmation);
    return true;
  }

  // ---- frames ----------------------------------------------------------------------------------------------

  function onWelcome(frame) {
    // Marks the panel as joined (also what the browser suite waits for before it chats).
    root.dataset.connected = 'true';
    you = frame.you || null;
    setRole((you && you.role) || 'anonymous');
    // Signed in according to /api/me but anonymous to the room: the access cookie expired in between. Refresh it
    // and reconnect once so the upgrade carries a fresh token.
    if (user && role === 'anonymous' && !reauthTried) {
      reauthTried = true;
      socket.reauthenticate();
    }
    rendered.clear();
    list.replaceChildren();
    const history = Array.isArray(frame.history) ? frame.history : [];
    for (const item of history) {
      const el = render(item);
      if (el) list.appendChild(el);
    }
    if (history.length === 0) list.appendChild(systemItem('Welcome to the chat! Be kind and have fun.'));
    earlier.hidden = history.filter((i) => !isDonation(i)).length === 0;
    setSlow(frame.slow_mode_seconds);
    scrollToBottom();
    if (typeof frame.viewers === 'number') onPresence(frame.viewers);
    if (frame.status) onStatus(frame.status, { initial: !welcomed });
    welcomed = true;
  }

  function onError(frame) {
    const code = frame.code || 'error';
    if (code === 'not_authenticated' && user && !reauthTried) {
      reauthTried = true;
      socket.reauthenticate();
      say('Reconnecting your session… send again in a second.', { tone: 'warn' });
      restoreUnsent();
      return;
    }
    const text = FRIENDLY_ERRORS[code] || frame.message || 'Something went wrong in chat.';
    if (code === 'not_authenticated') {
      say(text, { tone: 'warn', link: { text: 'Sign in', href: signinLink.href } });
    } else {
      say(text, { tone: code === 'banned' ? 'error' : 'warn' });
    }
    if (['rate_limited', 'too_long', 'bad_frame', 'not_authenticated'].includes(code)) restoreUnsent();
    // The relay tries for about 10 s before it gives up on a message.
    if (code === 'not_delivered') restoreUnsent(15000);
    if (code === 'rate_limited') cooldown(Math.max(2, slowSeconds));
  }

  function restoreUnsent(withinMs = 4000) {
    if (lastSent && Date.now() - lastSent.at < withinMs && !input.value) input.value = lastSent.text;
    lastSent = null;
  }

  function onFrame(frame) {
    switch (frame.type) {
      case 'welcome':
        onWelcome(frame);
        break;
      case 'chat':
        appendLive(render(frame));
        break;
      case 'donation':
        appendLive(render(frame));
        onDonation(frame);
        break;
      case 'presence':
        onPresence(frame.viewers);
        break;
      case 'status':
        appendLive(systemItem(frame.status === 'live' ? 'The stream is live!' : 'The stream has ended.'));
        onStatus(frame.status, { initial: false });
        break;
      case 'deleted': {
        const el = rendered.get(frame.id);
        if (el) {
          el.classList.add('msg--deleted');
          el.replaceChildren(h('span', { class: 'msg__text', text: 'Message removed by the host' }));
        }
        break;
      }
      case 'slow_mode':
        setSlow(frame.seconds);
        appendLive(systemItem(slowSeconds ? `Slow mode is on: one message every ${slowSeconds} s.` : 'Slow mode is off.'));
        break;
      case 'error':
        onError(frame);
        break;
      default:
        break;
    }
  }

  function onState(state, detail) {
    if (state !== 'open') root.dataset.connected = 'false';
    if (state === 'waiting') {
      const seconds = Math.max(1, Math.round(detail.delay / 1000));
      connection.replaceChildren(
        `Chat disconnected. Reconnecting in ${seconds} s… `,
        h('button', { class: 'link-button', text: 'Retry now', attrs: { type: 'button' }, on: { click: () => socket.reconnectNow() } }),
      );
      connection.hidden = false;
    } else if (state === 'connecting' && !welcomed) {
      connection.textContent = 'Connecting to chat…';
      connection.hidden = false;
    } else if (state === 'open') {
      connection.hidden = true;
      connection.replaceChildren();
    }
  }

  // ---- wiring ----------------------------------------------------------------------------------------------

  const socket = new LiveSocket(chatUrl(streamId), { frame: onFrame, state: onState });

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) {
      say(FRIENDLY_ERRORS.empty);
      return;
    }
    if ([...text].length > MAX_CHARS) {
      say(FRIENDLY_ERRORS.too_long, { tone: 'warn' });
      return;
    }
    if (send({ type: 'chat', text })) {
      lastSent = { text, at: Date.now() };
      input.value = '';
      cooldown(slowSeconds);
    }
  });

  slowSelect.addEventListener('change', () => {
    const seconds = Number.parseInt(slowSelect.value, 10) || 0;
    send({ type: 'slow_mode', seconds });
  });

  scroller.addEventListener('scroll', () => {
    if (nearBottom()) jump.hidden = true;
  });
  jump.addEventListener('click', scrollToBottom);

  earlier.addEventListener('click', async () => {
    const oldest = [...list.children].find((li) => li.dataset.id && li.dataset.kind !== 'donation');
    if (!oldest) {
      earlier.hidden = true;
      return;
    }
    earlier.disabled = true;
    try {
      const params = new URLSearchParams({ before: oldest.dataset.id, limit: String(HISTORY_PAGE) });
      const body = await api(`/api/streams/${encodeURIComponent(streamId)}/messages?${params}`);
      const messages = (Array.isArray(body.messages) ? body.messages : [])
        .slice()
        .sort((a, b) => String(a.ts).localeCompare(String(b.ts)));
      const before = scroller.scrollHeight;
      const fragment = document.createDocumentFragment();
      for (const item of messages) {
        const el = render(item);
        if (el) fragment.appendChild(el);
      }
      list.insertBefore(fragment, list.firstChild);
      scroller.scrollTop += scroller.scrollHeight - before;
      earlier.hidden = messages.length < HISTORY_PAGE;
    } catch {
      say('Could not load earlier messages. Try again.', { tone: 'warn' });
    } finally {
      earlier.disabled = false;
    }
  });

  setRole(user ? 'viewer' : 'anonymous');
  form.hidden = true;
  presence.textContent = '';
  socket.start();
  return {
    setViewers(n) {
      presence.textContent = `${compact(n)} watching`;
    },
  };
}
