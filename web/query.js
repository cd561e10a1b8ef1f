/*
 * What the user asks for, parsed: the catalog's search and filters, and
 * the view the URL fragment names. Pure, for the unit tests.
 */

/** The words of a search, lower-cased; every one must appear for a match. */
export function searchWords(q) {
  return String(q ?? '').toLowerCase().split(/\s+/).filter(Boolean);
}

/**
 * A test of a catalog record against the search words and the os, type,
 * state and channel filters ('' for any). A record without channels is in
 * `defaultChannel`, the server's default channel ('' for none).
 */
export function imageMatcher({ q = '', os = '', type = '', state = '', channel = '', defaultChannel = '' } = {}) {
  const words = searchWords(q);
  const inChannel = (r) => (r.channels.length ? r.channels.includes(channel) : channel === defaultChannel);
  return (r) => (!os || r.os === os) && (!type || r.type === type) && (!state || r.state === state)
    && (!channel || inChannel(r)) && (words.length === 0 || words.every((w) => r.hay.includes(w)));
}

const IMAGE_ROUTE = /^\/image\/([0-9a-fA-F-]{36})\/?$/;

/**
 * The view a URL fragment names: {view: 'catalog' | 'image' | 'upload', uuid}
 * (uuid lower-cased, '' but for an image), or null for an in-page anchor
 * such as the skip link's, which is no route.
 */
export function parseRoute(hash) {
  const path = String(hash ?? '').replace(/^#/, '');
  if (path && !path.startsWith('/')) return null;
  const image = IMAGE_ROUTE.exec(path);
  if (image) return { view: 'image', uuid: image[1].toLowerCase() };
  return { view: path === '/upload' ? 'upload' : 'catalog', uuid: '' };
}
