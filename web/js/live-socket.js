// A WebSocket to a stream's chat room that stays up for hours: it reconnects with exponential backoff and jitter
// (1 s doubling to 30 s) so a room restart or a flaky network never turns into a reconnect storm, and reconnects at
// once when the browser says it is back online. The room authenticates by the sl_access cookie on the upgrade, so
// the token never travels in the URL.

import { refreshSession } from './api.js';

const BASE_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;

export function chatUrl(streamId) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/api/streams/${encodeURIComponent(streamId)}/chat`;
}

/**
 * The frames one WebSocket message carries, in order: a busy room sends `{"type":"batch","frames":[...]}` (several
 * frames, oldest first, each exactly as it would come alone); anything else is one frame. Entries without a string
 * `type` are skipped, and a batch never nests.
 */
export function framesIn(message) {
  const frames = message && message.type === 'batch' && Array.isArray(message.frames) ? message.frames : [message];
  return frames.filter((f) => f && typeof f.type === 'string' && f.type !== 'batch');
}

export class LiveSocket {
  /**
   * handlers: { frame(obj), state('connecting'|'open'|'waiting', detail) }
   * `frame` is called once per frame, batches unpacked (so pages never see `batch`).
   * A `welcome` frame counts as a healthy connection and resets the backoff.
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.onOnline = () => {
      if (this.timer) this.reconnectNow();
    };
    window.addEventListener('online', this.onOnline);
  }

  start() {
    this.stopped = false;
    this.open();
  }

  open() {
    clearTimeout(this.timer);
    this.timer = null;
    this.emitState('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.addEventListener('open', () => this.emitState('open'));
    ws.addEventListener('message', (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      for (const frame of framesIn(message)) {
        if (frame.type === 'welcome') this.attempt = 0;
        this.handlers.frame(frame);
      }
    });
    ws.addEventListener('close', (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (!this.stopped) this.scheduleReconnect(event.code);
    });
  }

  scheduleReconnect(code) {
    const exp = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.min(this.attempt, 10));
    const delay = Math.round(exp * (0.7 + Math.random() * 0.6));
    this.attempt += 1;
    this.emitState('waiting', { delay, code });
    this.timer = setTimeout(() => this.open(), delay);
  }

  reconnectNow() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.ws) {
      const old = this.ws;
      this.ws = null;
      old.close(1000);
    }
    this.open();
  }

  /** Refresh the session cookie and reconnect, so the room sees the new access token on the upgrade. */
  async reauthenticate() {
    const ok = await refreshSession();
    if (ok) this.reconnectNow();
    return ok;
  }

  send(obj) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }

  get isOpen() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener('online', this.onOnline);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  emitState(state, detail = {}) {
    if (this.handlers.state) this.handlers.state(state, detail);
  }
}
