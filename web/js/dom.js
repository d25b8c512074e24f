// Tiny DOM builder. Every piece of text goes in through text nodes, never through innerHTML, so data from the API
// (usernames, titles, chat text, donation messages) can only ever show up as text.

/**
 * Build an element.
 * props: { class, text, attrs: {name: value}, data: {key: value}, on: {event: handler}, props: {prop: value} }
 * children: nodes, strings (become text nodes), arrays of those; null/undefined/false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  if (props.text !== undefined && props.text !== null) el.textContent = String(props.text);
  for (const [name, value] of Object.entries(props.attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (/^on/i.test(name) || name === 'style' || name === 'srcdoc') {
      throw new Error(`refusing to set ${name} as an attribute`);
    }
    el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const [key, value] of Object.entries(props.data || {})) el.dataset[key] = String(value);
  for (const [event, handler] of Object.entries(props.on || {})) el.addEventListener(event, handler);
  for (const [prop, value] of Object.entries(props.props || {})) el[prop] = value;
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** The element with this id; a missing one is a bug in the page's markup. */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`BUG: #${id} is missing from the page`);
  return el;
}

/** Replace everything inside `el` with `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A stable hue (0-359) for a string, so a user's name keeps its colour everywhere. */
export function hueFor(text) {
  let hash = 0;
  for (let i = 0; i < text.length; i += 1) hash = (hash * 31 + text.charCodeAt(i)) >>> 0;
  return hash % 360;
}

/** A stable warm hue (-25..45: rose, coral, orange, amber, sun yellow) for a stream's tile, on brand. */
export function warmHueFor(text) {
  return (hueFor(text) % 71) - 25;
}

/** Only http(s) URLs may be navigated to from data the API returned (no javascript: or data: surprises). */
export function safeHttpUrl(raw) {
  try {
    const url = new URL(raw, location.href);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}

/**
 * A same-site place to return to after signing in; anything else becomes `fallback`. `raw` is resolved the way the
 * browser will resolve it (which strips tabs and newlines and reads `\` as `/`, so `/\t/evil.example` is
 * `//evil.example`), and kept only when the result has this site's origin. Returns path, query and hash.
 */
export function safeNextPath(raw, fallback = '/') {
  if (typeof raw !== 'string' || !raw.startsWith('/')) return fallback;
  let url;
  try {
    url = new URL(raw, location.origin);
  } catch {
    return fallback;
  }
  if (url.origin !== location.origin) return fallback;
  return `${url.pathname}${url.search}${url.hash}`;
}

/** Ids are opaque URL-safe strings; anything else in a path segment is not one of ours. */
export function idFromPath(index) {
  const segment = location.pathname.split('/')[index] || '';
  let id;
  try {
    id = decodeURIComponent(segment);
  } catch {
    return null;
  }
  return /^[A-Za-z0-9_-]{1,100}$/.test(id) ? id : null;
}
