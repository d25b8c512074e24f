// The one way pages talk to the API: same-origin fetch with the HttpOnly session cookies, JSON in and out, errors as
// ApiError with the contract's `{error: {code, message, fields}}`. An expired access cookie (401) is refreshed once
// through POST /api/auth/refresh and the call retried, so a page left open past the 15-minute token keeps working.

export class ApiError extends Error {
  constructor(status, code, message, fields = {}, retryAfter = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.fields = fields || {};
    this.retryAfter = retryAfter;
  }
}

let refreshing = null;

function postRefresh() {
  return fetch('/api/auth/refresh', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  })
    .then((res) => res.ok)
    .catch(() => false);
}

/**
 * Refresh tokens are single use and a reused one revokes the whole login, so two tabs refreshing at once would
 * sign the person out. One refresh at a time per page (parallel 401s share it) and, where the browser has Web
 * Locks, one at a time across tabs: whoever gets the lock second first checks whether the other tab already
 * refreshed the shared cookie.
 */
export function refreshSession() {
  if (!refreshing) {
    const run = async () => {
      if (navigator.locks && navigator.locks.request) {
        return navigator.locks.request('sunnylive-refresh', async () => {
          const probe = await fetch('/api/me', { credentials: 'same-origin' }).catch(() => null);
          if (probe && probe.ok) return true;
          return postRefresh();
        });
      }
      return postRefresh();
    };
    refreshing = run().finally(() => {
      setTimeout(() => {
        refreshing = null;
      }, 0);
    });
  }
  return refreshing;
}

// Read your own writes: the API names the newest database state each answer saw (`Sunnylive-Bookmark`, docs/API.md
// "Read bookmarks"); sending the last one back makes the next read at least that new, whichever replica of the
// database is nearest. Kept per browser, so a stream created in Studio is in the list on the next page too.
const BOOKMARK = 'Sunnylive-Bookmark';
const BOOKMARK_KEY = 'sunnylive.bookmark';

function lastBookmark() {
  try {
    return localStorage.getItem(BOOKMARK_KEY);
  } catch {
    return null;
  }
}

function keepBookmark(res) {
  const bookmark = res.headers.get(BOOKMARK);
  if (!bookmark) return;
  try {
    localStorage.setItem(BOOKMARK_KEY, bookmark);
  } catch {
    // Storage refused (private mode, quota): reads may then lag a write by the replicas' delay, nothing worse.
  }
}

async function send(path, method, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  const bookmark = lastBookmark();
  if (bookmark) init.headers[BOOKMARK] = bookmark;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', "Can't reach Sunnylive right now. Check your connection and try again.");
  }
  keepBookmark(res);
  return res;
}

async function readError(res) {
  let payload = null;
  try {
    payload = await res.json();
  } catch {
    payload = null;
  }
  const err = payload && payload.error ? payload.error : {};
  const retryAfter = Number.parseInt(res.headers.get('Retry-After') || '', 10);
  return new ApiError(
    res.status,
    typeof err.code === 'string' ? err.code : `http_${res.status}`,
    typeof err.message === 'string' ? err.message : defaultMessage(res.status),
    err.fields && typeof err.fields === 'object' ? err.fields : {},
    Number.isFinite(retryAfter) ? retryAfter : null,
  );
}

function defaultMessage(status) {
  if (status === 429) return 'Too many requests. Please wait a moment and try again.';
  if (status >= 500) return 'Something went wrong on our side. Please try again.';
  return 'The request could not be completed.';
}

/**
 * Call the API. Resolves to the parsed JSON body (null for 204), rejects with ApiError.
 * `refresh: false` skips the refresh-and-retry (the auth routes themselves).
 */
export async function api(path, { method = 'GET', body, refresh = true } = {}) {
  let res = await send(path, method, body);
  if (res.status === 401 && refresh && (await refreshSession())) {
    res = await send(path, method, body);
  }
  if (!res.ok) throw await readError(res);
  if (res.status === 204) return null;
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(res.status, 'bad_response', 'The server sent an answer we could not read.');
  }
}

/** The signed-in user, or null for a guest. Other failures (network, 5xx) reject. */
export async function currentUser() {
  try {
    const body = await api('/api/me');
    return body && body.user ? body.user : null;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

/** A polite sentence for an error from `api`, for places that show one line. */
export function describeError(err) {
  if (err instanceof ApiError) {
    if (err.status === 429) {
      return err.retryAfter ? `Too many tries. Please wait ${err.retryAfter} s and try again.` : err.message;
    }
    return err.message;
  }
  return 'Something unexpected happened. Please reload the page.';
}
