/*
 * One image (#/image/<uuid>): every manifest field, the origin chain,
 * versions, download, sha1, imgadm commands, and the publisher's actions.
 */
import { api, apiUrl, auth, readAll } from '../api.js';
import { data, loadCatalog, loadChannels } from '../catalog-data.js';
import { $, h } from '../dom.js';
import { failureText } from '../errors.js';
import { fmt, humanSize, shortDate, UUID_RE } from '../format.js';
import { defaultChannel, imageChannels, joinableChannels } from '../records.js';
import { commandLine, confirmDialog } from '../widgets.js';

/** imgadm's import command; for an image in channels, in the first of them (-C). */
function importCommand(m) {
  const channel = Array.isArray(m.channels) && typeof m.channels[0] === 'string' ? `-C ${m.channels[0]} ` : '';
  return `imgadm import ${channel}${m.uuid}`;
}

/**
 * Builds the view into #image-view; `base` is this server's URL for
 * imgadm, `current` the route on screen (an answer for an image no longer
 * shown is dropped).
 */
export function createImageView({ base, current }) {
  const section = $('#image-view');
  let shown = null; // the manifest on screen
  let related = null; // its versions, dependents and origin chain (re-drawn when the catalog loads)
  let channels = []; // the server's channels, none on a server without

  function valueNode(value) {
    if (value !== null && typeof value === 'object') return h('pre', null, JSON.stringify(value, null, 2));
    if (typeof value === 'string' && UUID_RE.test(value)) return h('span', { class: 'mono' }, value);
    return String(value);
  }

  function stateBadge(m) {
    return h('span', { class: `badge badge-${m.state}`, id: 'image-state' }, m.state);
  }

  function fact(label, value, id) {
    return [h('dt', null, label), h('dd', { id }, value)];
  }

  async function show(uuid) {
    shown = null;
    section.replaceChildren(h('p', { class: 'status', role: 'status' }, 'Loading the image…'));
    const listing = loadChannels();
    let m;
    try {
      m = await readAll(`images/${encodeURIComponent(uuid)}`);
    } catch (err) {
      if (current.view !== 'image' || current.uuid !== uuid) return;
      section.replaceChildren(
        h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← All images')),
        h('h1', { id: 'image-title', tabindex: -1 }, 'Image not found'),
        h('p', { role: 'alert' }, err.status === 404
          ? `No image ${uuid} is visible to you.${auth.header ? '' : ' A private image is shown to signed-in users only.'}`
          : err.message));
      $('#image-title').focus();
      return;
    }
    channels = await listing;
    if (current.view !== 'image' || current.uuid !== uuid) return;
    draw(m);
    $('#image-title').focus();
  }

  function draw(m) {
    shown = m;
    const file = Array.isArray(m.files) && m.files[0] ? m.files[0] : {};
    const fileUrl = `images/${m.uuid}/file`;
    const actions = auth.header ? actionPanel(m) : null;
    related = h('div', { id: 'image-related' });
    section.replaceChildren(h('div', null,
      h('p', { class: 'crumbs' }, h('a', { href: '#/', id: 'back-to-catalog' }, '← All images')),
      h('div', { class: 'image-head' },
        h('h1', { id: 'image-title', tabindex: -1 }, `${m.name} `, h('span', { class: 'mono' }, m.version)),
        stateBadge(m),
        m.public === false ? h('span', { class: 'private' }, 'private') : null),
      m.description ? h('p', { class: 'lede' }, m.description) : null,
      h('section', { class: 'panel', 'aria-labelledby': 'import-title' },
        h('h2', { id: 'import-title' }, 'Import it'),
        h('p', { class: 'hint' }, 'On a SmartOS host: add this server as a source (once), then import the image.'),
        commandLine('cmd-sources', `imgadm sources -a ${base}`, 'Copy the imgadm sources command'),
        commandLine('cmd-import', importCommand(m), 'Copy the imgadm import command')),
      h('section', { class: 'panel', 'aria-labelledby': 'file-title' },
        h('h2', { id: 'file-title' }, 'File'),
        h('dl', { class: 'facts' },
          fact('UUID', h('span', { class: 'mono' }, m.uuid), 'image-uuid'),
          Array.isArray(m.channels) ? fact('Channels', m.channels.join(', '), 'image-channels') : null,
          fact('Published', m.published_at ? m.published_at : 'not yet (unactivated)', 'image-published'),
          fact('Size', typeof file.size === 'number' ? `${humanSize(file.size)} (${fmt(file.size)} bytes)` : 'no file', 'image-size'),
          fact('Compression', file.compression ?? '—', 'image-compression'),
          fact('SHA-1', h('span', { class: 'mono' }, file.sha1 ?? '—'), 'image-sha1'),
          fact('Download', file.sha1
            ? [h('a', { href: fileUrl, id: 'download-link', download: '' }, apiUrl(fileUrl)),
              m.public === false ? h('span', { class: 'hint' }, ' (private: needs credentials, e.g. curl -u USER -O URL)') : null]
            : '—', 'image-download'))),
      actions,
      related,
      h('section', { class: 'panel', 'aria-labelledby': 'fields-title' },
        h('h2', { id: 'fields-title' }, 'Manifest'),
        h('table', { class: 'fields', id: 'manifest-fields' },
          h('caption', { class: 'hint' }, 'Every field of the manifest, as imgadm receives it'),
          h('tbody', null, Object.entries(m).map(([key, value]) =>
            h('tr', { dataset: { field: key } }, h('th', { scope: 'row' }, key), h('td', null, valueNode(value)))))),
        h('details', null, h('summary', null, 'The manifest as JSON'),
          h('pre', { class: 'raw', id: 'manifest-json' }, JSON.stringify(m, null, 2)))),
    ));
    refreshRelated();
  }

  function link(r, label) {
    return h('a', { href: `#/image/${r.uuid}` }, label ?? `${r.name} ${r.version}`);
  }

  /** Version history, dependents and the origin chain: from the catalog, else fetched one by one. */
  async function refreshRelated() {
    if (!shown || !related) return;
    const m = shown;
    const box = related;
    const versions = data.byName.get(m.name) ?? [];
    const dependents = data.dependents.get(m.uuid) ?? [];
    const chainList = h('ol', { class: 'chain', id: 'origin-chain' }, h('li', { class: 'current' }, `${m.name} ${m.version} (this image)`));
    box.replaceChildren(
      h('section', { class: 'panel', 'aria-labelledby': 'chain-title' },
        h('h2', { id: 'chain-title' }, 'Origin chain'),
        m.origin ? chainList : h('p', { id: 'origin-chain' }, 'No origin: this image is complete in itself.'),
        dependents.length ? [h('h2', null, 'Built on this image'),
          h('ul', { class: 'versions', id: 'dependents' }, dependents.map((r) => h('li', null, link(r), ` (${r.state})`)))] : null),
      h('section', { class: 'panel', 'aria-labelledby': 'versions-title' },
        h('h2', { id: 'versions-title' }, `Versions of ${m.name}`),
        data.status !== 'ready'
          ? h('p', { class: 'hint' }, 'Loading…')
          : h('ul', {
            class: 'versions scroll', id: 'version-history', tabindex: 0, 'aria-label': `${fmt(versions.length)} versions of ${m.name}, newest first`,
          }, versions.map((r) => h('li', { class: r.uuid === m.uuid ? 'current' : null },
            r.uuid === m.uuid ? `${r.version} (this image)` : link(r, r.version),
            ` · ${shortDate(r.published)} · ${r.state} · ${humanSize(r.size)}`)))),
    );
    // Walk the origins; a loop or a missing origin ends the walk.
    const seen = new Set([m.uuid]);
    let origin = m.origin;
    while (typeof origin === 'string' && !seen.has(origin) && seen.size < 64) {
      seen.add(origin);
      let o = data.byUuid.get(origin)?.m;
      if (!o) {
        try {
          o = await readAll(`images/${encodeURIComponent(origin)}`);
        } catch {
          o = null;
        }
      }
      if (related !== box) return;
      if (!o) {
        chainList.append(h('li', null, h('span', { class: 'mono' }, origin), ' (not visible to you)'));
        break;
      }
      chainList.append(h('li', null, link({ uuid: o.uuid, name: o.name, version: o.version }), ` (${o.state})`));
      origin = o.origin;
    }
  }

  function actionPanel(m) {
    const message = h('div', { id: 'action-result', role: 'status', 'aria-live': 'polite' });
    const form = h('div', { class: 'actions' });
    /**
     * A button that asks `title` first, then runs `act`; `words` name the
     * action in its outcome (the label when not given), `gone` says the
     * image will be no more. The texts are read when the button is pressed.
     */
    const run = ({
      id, label, words = () => label, title = () => `${label} ${m.name} ${m.version}?`, text, confirm = label, danger = false, gone = false, act,
    }) => h('button', {
      type: 'button', id, class: danger ? 'danger' : null,
      onclick: async () => {
        const what = words();
        const yes = await confirmDialog({ title: title(), text: typeof text === 'function' ? text() : text, confirm, danger });
        if (!yes) return;
        message.replaceChildren('Working…');
        try {
          await act();
        } catch (err) {
          message.replaceChildren(h('p', { class: 'field-error', role: 'alert', id: 'action-error' },
            failureText(what, err)));
          return;
        }
        loadCatalog();
        if (gone) {
          location.hash = '#/';
          return;
        }
        const fresh = await readAll(`images/${m.uuid}`).catch(() => null);
        if (fresh && current.view === 'image' && current.uuid === m.uuid) {
          draw(fresh);
          $('#action-result').replaceChildren(`${what}: done.`);
          ($(`#${id}`) ?? $('#image-title')).focus();
        }
      },
    }, label);
    if (m.state === 'unactivated') {
      form.append(run({ id: 'action-activate', label: 'Activate', text: 'The image becomes visible to imgadm and can no longer take a new file.',
        act: () => api('POST', `images/${m.uuid}?action=activate&channel=*`) }));
    }
    if (m.disabled) {
      form.append(run({ id: 'action-enable', label: 'Enable', text: 'imgadm will list the image again.',
        act: () => api('POST', `images/${m.uuid}?action=enable&channel=*`) }));
    } else if (m.state === 'active') {
      form.append(run({ id: 'action-disable', label: 'Disable', text: 'imgadm will no longer list the image; hosts that have it keep it.',
        act: () => api('POST', `images/${m.uuid}?action=disable&channel=*`) }));
    }
    form.append(run({ id: 'action-delete', label: 'Delete', danger: true, gone: true,
      text: 'The image and its file are removed from this server, from every channel. This cannot be undone.',
      act: () => api('DELETE', `images/${m.uuid}?channel=*`) }));
    return h('section', { class: 'panel', 'aria-labelledby': 'actions-title' },
      h('h2', { id: 'actions-title' }, 'Publisher actions'), form, channelActions(m, run), message);
  }

  /** On a server with channels: add the image to a channel it is not in, or take it out of one it is in. */
  function channelActions(m, run) {
    if (channels.length === 0) return null;
    const fallback = defaultChannel(channels);
    const inChannels = imageChannels(m.channels, fallback);
    const joinable = joinableChannels(channels, m.channels, fallback);
    const box = h('div', { class: 'actions channel-actions', id: 'channel-actions', role: 'group', 'aria-label': 'Channels' });
    if (joinable.length) {
      const pick = h('select', { id: 'channel-add-select' }, joinable.map((name) => h('option', { value: name, text: name })));
      box.append(h('label', { for: 'channel-add-select' }, 'Channel'), pick, run({
        id: 'action-channel-add', label: 'Add to channel', words: () => `Add to channel ${pick.value}`,
        title: () => `Add ${m.name} ${m.version} to channel ${pick.value}?`,
        text: () => `imgadm will list it in channel ${pick.value}${inChannels.length ? ` too; it stays in ${inChannels.join(', ')}` : ''}.`,
        confirm: 'Add', act: () => api('POST', `images/${m.uuid}?action=channel-add&channel=*`, { channel: pick.value }),
      }));
    }
    for (const name of inChannels) {
      const others = inChannels.filter((c) => c !== name);
      const last = others.length === 0;
      box.append(run({
        id: `action-channel-remove-${name}`, label: `Remove from channel ${name}`, danger: last, gone: last,
        title: () => `Remove ${m.name} ${m.version} from channel ${name}?`,
        text: () => (last
          ? `${name} is its last channel: the image and its file are removed from this server. This cannot be undone.`
          : `imgadm will no longer list it in channel ${name}; it stays in ${others.join(', ')}.`),
        confirm: last ? 'Delete' : 'Remove',
        act: () => api('DELETE', `images/${m.uuid}?channel=${encodeURIComponent(name)}`),
      }));
    }
    return box;
  }

  return {
    section,
    show,
    refreshRelated: () => {
      refreshRelated();
    },
  };
}
