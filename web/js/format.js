// How numbers, money and times read on the page: rupiah the Indonesian way ("Rp 50.000"), short relative times.

const rupiahFormat = new Intl.NumberFormat('id-ID', { style: 'currency', currency: 'IDR', maximumFractionDigits: 0 });
const compactFormat = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });
const clockFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function rupiah(amount) {
  const n = Number(amount);
  return Number.isFinite(n) ? rupiahFormat.format(n) : '';
}

export function compact(n) {
  return compactFormat.format(Number(n) || 0);
}

export function viewers(n) {
  const count = Number(n) || 0;
  return `${compactFormat.format(count)} ${count === 1 ? 'viewer' : 'viewers'}`;
}

function parse(iso) {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t : null;
}

/** "3 min", "2 h 5 min": how long since `iso`. */
export function durationSince(iso, now = Date.now()) {
  const t = parse(iso);
  if (t === null) return '';
  const minutes = Math.max(0, Math.floor((now - t) / 60000));
  if (minutes < 1) return 'just now';
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  if (hours < 24) return rest ? `${hours} h ${rest} min` : `${hours} h`;
  const days = Math.floor(hours / 24);
  return `${days} ${days === 1 ? 'day' : 'days'}`;
}

/** "Live for 5 min", or "Just went live" in the first minute. */
export function liveFor(iso, now = Date.now()) {
  const since = durationSince(iso, now);
  if (!since) return 'Live';
  return since === 'just now' ? 'Just went live' : `Live for ${since}`;
}

/** "5 min ago", or a date for anything older than a week. */
export function ago(iso, now = Date.now()) {
  const t = parse(iso);
  if (t === null) return '';
  if (now - t > 7 * 24 * 3600 * 1000) return dateFormat.format(t);
  const since = durationSince(iso, now);
  return since === 'just now' ? since : `${since} ago`;
}

/** "1:02:03" or "4:05": a video's length in seconds, as players show it. */
export function clockDuration(seconds) {
  const total = Math.max(0, Math.round(Number(seconds) || 0));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const pad = (n) => String(n).padStart(2, '0');
  return hours > 0 ? `${hours}:${pad(minutes)}:${pad(total % 60)}` : `${minutes}:${pad(total % 60)}`;
}

/** "1 h 2 min 3 s": the same length spelled out, for screen readers. */
export function spokenDuration(seconds) {
  const total = Math.max(0, Math.round(Number(seconds) || 0));
  const parts = [];
  if (total >= 3600) parts.push(`${Math.floor(total / 3600)} h`);
  if (total % 3600 >= 60) parts.push(`${Math.floor((total % 3600) / 60)} min`);
  if (total % 60 || parts.length === 0) parts.push(`${total % 60} s`);
  return parts.join(' ');
}

export function clock(iso) {
  const t = parse(iso);
  return t === null ? '' : clockFormat.format(t);
}

export function dateTime(iso) {
  const t = parse(iso);
  return t === null ? '' : dateFormat.format(t);
}

/** Digits typed by a person ("50.000", "Rp 50,000", "50000") as an integer, or null. */
export function parseRupiah(text) {
  const digits = String(text || '').replace(/[^0-9]/g, '');
  if (!digits || digits.length > 12) return null;
  return Number.parseInt(digits, 10);
}
