// The header every page shares: who is signed in (GET /api/me, refreshed once if the access cookie expired, their
// name linking to the Account page), sign out, and the search box keeping the current query.

import { api, currentUser } from './api.js';
import { h, fill } from './dom.js';

/** Fill the header's account area and resolve to the signed-in user (or null). Never rejects. */
export async function initHeader() {
  const nav = document.querySelector('[data-session-nav]');
  const search = document.querySelector('.search input[name="q"]');
  if (search) search.value = new URLSearchParams(location.search).get('q') || '';

  let user = null;
  try {
    user = await currentUser();
  } catch {
    user = null;
  }
  if (!nav) return user;

  const here = location.pathname + location.search;
  if (user) {
    const signOut = h('button', {
      class: 'btn btn--ghost btn--small',
      text: 'Sign out',
      attrs: { type: 'button' },
      on: {
        click: async () => {
          signOut.disabled = true;
          try {
            await api('/api/auth/logout', { method: 'POST', refresh: false });
          } catch {
            // The cookies may already be gone; going home shows the signed-out header either way.
          }
          location.assign('/');
        },
      },
    });
    fill(
      nav,
      h('a', { class: 'nav-link', text: 'Studio', attrs: { href: '/studio' } }),
      // The person's own name and avatar lead to their Account page (password, sign-ins, recovery codes).
      h(
        'a',
        { class: 'nav-user', attrs: { href: '/account', title: 'Your account', 'aria-label': `Account: ${user.username}` } },
        h('span', { class: 'avatar', text: initial(user.username) }),
        h('span', { class: 'nav-user__name', text: user.username }),
      ),
      signOut,
    );
  } else {
    const next = encodeURIComponent(here);
    fill(
      nav,
      h('a', { class: 'nav-link', text: 'Sign in', attrs: { href: `/login?next=${next}` } }),
      h('a', { class: 'btn btn--primary btn--small', text: 'Create account', attrs: { href: `/register?next=${next}` } }),
    );
  }
  return user;
}

export function initial(name) {
  const first = String(name || '?').trim().charAt(0);
  return first ? first.toUpperCase() : '?';
}
