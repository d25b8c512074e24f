// Stream and broadcast thumbnails. The origin uploads a still about every 20 s while a stream is live; each new one
// has a new URL (`?v=`), so swapping `src` is how a card follows the stream. Until the new picture has loaded the
// browser keeps showing the old one; a picture that fails to load is hidden and the warm gradient tile behind it
// (our placeholder) shows instead.

import { h } from './dom.js';

/** An <img> for `url` (root-relative or on the media domain), decorative: the card's title says what it is. */
export function thumbnailImage(url, className) {
  const img = h('img', {
    class: className,
    attrs: { alt: '', loading: 'lazy', decoding: 'async', draggable: 'false' },
  });
  img.addEventListener('error', () => {
    img.hidden = true;
  });
  img.addEventListener('load', () => {
    img.hidden = false;
  });
  setThumbnail(img, url);
  return img;
}

/** Points `img` at `url`; null or an unchanged URL does nothing (a card keeps the last picture it had). */
export function setThumbnail(img, url) {
  if (!url || img.dataset.src === url) return;
  img.dataset.src = url;
  img.src = url;
}
