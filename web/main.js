/*
 * The web catalog of smartos-image-server: native ES modules, no
 * framework, no build step, and no request to anything but this server.
 * This module wires the views to the URL fragment:
 *   #/                 the catalog (views/catalog.js)
 *   #/image/<uuid>     one image (views/image.js)
 *   #/upload           publish an image (views/publish.js)
 */
import { auth, baseUrl, restoreAuth } from './api.js';
import { loadCatalog, onCatalogChange } from './catalog-data.js';
import { $ } from './dom.js';
import { parseRoute } from './query.js';
import { createSignIn, updateAccount } from './signin.js';
import { createCatalogView } from './views/catalog.js';
import { createImageView } from './views/image.js';
import { createPublishView } from './views/publish.js';

restoreAuth();
const base = baseUrl();
const current = { view: '', uuid: '' };
let catalogScroll = 0;

const signIn = createSignIn({ onChange: accountChanged });
const catalogView = createCatalogView({ base, signIn });
const imageView = createImageView({ base, current });
const publishView = createPublishView({ signIn });

onCatalogChange(() => {
  catalogView.update();
  if (current.view === 'image') imageView.refreshRelated();
});

function route() {
  const next = parseRoute(location.hash);
  if (!next) return;
  const from = { ...current };
  if (from.view === 'catalog' && next.view !== 'catalog') catalogScroll = window.scrollY;
  const previousUuid = from.view === 'image' ? from.uuid : '';
  Object.assign(current, next);
  catalogView.section.hidden = next.view !== 'catalog';
  imageView.section.hidden = next.view !== 'image';
  publishView.section.hidden = next.view !== 'upload';
  if (next.view === 'catalog') {
    document.title = 'SmartOS image server';
    if (from.view && from.view !== 'catalog') window.scrollTo(0, catalogScroll);
    catalogView.renderWindow(true);
    if (!(previousUuid && catalogView.focusImage(previousUuid)) && from.view) $('#catalog-title').focus({ preventScroll: true });
  } else if (next.view === 'image') {
    document.title = 'Image · SmartOS image server';
    window.scrollTo(0, 0);
    imageView.show(current.uuid);
  } else {
    document.title = 'Publish · SmartOS image server';
    window.scrollTo(0, 0);
    publishView.show();
  }
}

function accountChanged() {
  updateAccount();
  loadCatalog();
  route();
  const focus = auth.header ? $('#upload-link') : $('#signin-button');
  if (!document.activeElement || document.activeElement === document.body) focus.focus();
}

window.addEventListener('hashchange', route);
$('.skip').addEventListener('click', (e) => {
  e.preventDefault();
  $('#main').focus();
});
document.addEventListener('keydown', (e) => {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
  const typing = e.target.closest('input, textarea, select, [contenteditable]') || document.querySelector('dialog[open]');
  if (typing) return;
  if (e.key === '/' && current.view === 'catalog') {
    e.preventDefault();
    catalogView.focusSearch();
  } else if (e.key === 'Escape' && current.view === 'image') {
    location.hash = '#/';
  }
});

updateAccount();
route();
loadCatalog();
