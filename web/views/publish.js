/*
 * Publishing an image (#/upload): a manifest from fields or a file, the
 * image file, multipart POST /images?activate=true with progress, and the
 * API's refusals shown next to the fields they concern.
 */
import { auth, uploadImage } from '../api.js';
import { loadCatalog, loadChannels } from '../catalog-data.js';
import { $, h } from '../dom.js';
import { uploadInputFor } from '../errors.js';
import { humanSize } from '../format.js';
import { clearErrors, showApiError, showProblems } from '../forms.js';

/** Builds the view into #upload-view. */
export function createPublishView({ signIn }) {
  const section = $('#upload-view');
  const OSES = ['smartos', 'linux', 'windows', 'bsd', 'illumos', 'other'];
  const TYPES = ['zone-dataset', 'lx-dataset', 'zvol', 'docker', 'lxd', 'other'];
  const COMPRESSIONS = ['gzip', 'bzip2', 'xz', 'none'];
  /** Fields with inputs of their own; the rest of a manifest file goes in "More fields". */
  const OWN = ['uuid', 'name', 'version', 'os', 'type', 'description', 'homepage', 'origin', 'public'];

  const f = (id, label, control, hint) => h('div', { class: 'f' },
    h('label', { for: id }, label, hint ? h('span', { class: 'hint' }, ` ${hint}`) : null), control);
  const input = (id, field, props = {}) => h('input', { id, name: field, type: 'text', dataset: { field }, spellcheck: 'false', ...props });
  const choose = (id, field, values, first) => h('select', { id, name: field, dataset: { field } },
    first ? h('option', { value: '', text: first }) : null, values.map((v) => h('option', { value: v, text: v })));

  const manifestFile = h('input', { id: 'up-manifest', name: 'manifest', type: 'file', accept: '.json,application/json', dataset: { field: 'manifest' } });
  const fields = {
    name: input('up-name', 'name', { required: true, autocomplete: 'off' }),
    version: input('up-version', 'version', { required: true, autocomplete: 'off' }),
    os: choose('up-os', 'os', OSES),
    type: choose('up-type', 'type', TYPES),
    description: input('up-description', 'description', { autocomplete: 'off', spellcheck: 'true' }),
    homepage: input('up-homepage', 'homepage', { type: 'url', autocomplete: 'off' }),
    origin: input('up-origin', 'origin', { autocomplete: 'off', placeholder: 'uuid of the image this one is built on' }),
    uuid: input('up-uuid', 'uuid', { autocomplete: 'off', placeholder: 'a new one when empty' }),
    public: h('select', { id: 'up-public', name: 'public', dataset: { field: 'public' } },
      h('option', { value: '', text: 'the server default' }), h('option', { value: 'true', text: 'public: anyone can see it' }),
      h('option', { value: 'false', text: 'private: signed-in users only' })),
  };
  const extra = h('textarea', { id: 'up-extra', name: 'extra', rows: 4, spellcheck: 'false', dataset: { field: 'extra' }, placeholder: '{"requirements": {"min_platform": {"7.0": "20230101T000000Z"}}}' });
  const file = h('input', { id: 'up-file', name: 'file', type: 'file', required: true, dataset: { field: 'file' } });
  const compression = choose('up-compression', 'compression', COMPRESSIONS, 'detect from the file');
  // On a server with channels only: the one the image is published into.
  const channel = h('select', { id: 'up-channel', name: 'channel', dataset: { field: 'channel' } });
  const channelField = f('up-channel', 'Channel', channel, '(imgadm finds the image in this channel)');
  channelField.hidden = true;
  const activate = h('input', { id: 'up-activate', type: 'checkbox', checked: true });
  const progress = h('progress', { id: 'upload-progress', max: 100, value: 0, 'aria-labelledby': 'upload-progress-label' });
  const progressText = h('span', { id: 'upload-progress-text' });
  const progressBox = h('div', { class: 'progress', hidden: true },
    h('span', { id: 'upload-progress-label' }, 'Upload'), progress, progressText);
  const live = h('p', { class: 'hint', role: 'status', 'aria-live': 'polite', id: 'upload-status' });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'up-submit' }, 'Publish');
  const cancel = h('button', { type: 'button', id: 'up-cancel', hidden: true }, 'Cancel upload');
  const result = h('div', { id: 'upload-result' });

  const form = h('form', { id: 'upload-form', class: 'form', novalidate: true },
    h('fieldset', null, h('legend', null, 'Manifest'),
      f('up-manifest', 'Manifest file', manifestFile, '(optional: fills the fields below; imgadm\'s JSON manifest)'),
      h('div', { class: 'row2' }, f('up-name', 'Name', fields.name), f('up-version', 'Version', fields.version)),
      h('div', { class: 'row2' }, f('up-os', 'OS', fields.os), f('up-type', 'Type', fields.type)),
      f('up-description', 'Description', fields.description),
      h('div', { class: 'row2' }, f('up-homepage', 'Homepage', fields.homepage), f('up-public', 'Visibility', fields.public)),
      h('div', { class: 'row2' }, f('up-origin', 'Origin', fields.origin, '(optional)'), f('up-uuid', 'UUID', fields.uuid, '(optional)')),
      f('up-extra', 'More fields', extra, '(optional JSON object: requirements, tags, users, …)'),
      channelField),
    h('fieldset', null, h('legend', null, 'Image file'),
      f('up-file', 'File', file, '(the zfs send stream, compressed or not)'),
      f('up-compression', 'Compression', compression)),
    h('label', { class: 'f inline', for: 'up-activate' }, activate, 'Activate at once (imgadm can import it as soon as it is stored)'),
    progressBox, live,
    h('div', { class: 'buttons' }, submit, cancel));

  section.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← All images')),
    h('h1', { id: 'upload-title', tabindex: -1 }, 'Publish an image'),
    h('p', { id: 'upload-signin', hidden: true }, 'Sign in to publish images. ',
      h('button', { type: 'button', onclick: () => signIn.open() }, 'Sign in')),
    result,
    form,
  );

  manifestFile.addEventListener('change', async () => {
    clearErrors(form);
    const chosen = manifestFile.files?.[0];
    if (!chosen) return;
    let m;
    try {
      m = JSON.parse(await chosen.text());
      if (!m || typeof m !== 'object' || Array.isArray(m)) throw new Error('not a JSON object');
    } catch (err) {
      showProblems(form, [{ el: manifestFile, message: `This file is not a JSON manifest: ${err.message}` }]);
      return;
    }
    for (const key of OWN) {
      const el = fields[key];
      const value = m[key];
      el.value = value === undefined || value === null ? '' : String(value);
      if (el.tagName === 'SELECT' && el.value === '' && value !== undefined && key !== 'public') {
        el.append(h('option', { value: String(value), text: String(value) }));
        el.value = String(value);
      }
    }
    const rest = {};
    for (const [key, value] of Object.entries(m)) {
      if (!OWN.includes(key) && !['state', 'disabled', 'activated', 'published_at'].includes(key)) rest[key] = value;
    }
    extra.value = Object.keys(rest).length ? JSON.stringify(rest, null, 2) : '';
    live.textContent = `Fields filled from ${chosen.name}.`;
  });

  /** Which input shows the API's error about `field` (or about a whole error code, "#Code"). */
  function fieldFor(field) {
    const input = uploadInputFor(field, { own: OWN, fromFile: Boolean(manifestFile.files?.length) });
    const inputs = { file, compression, channel, manifestFile, extra };
    return input === null ? null : (fields[input] ?? inputs[input]);
  }

  let running = null;
  cancel.addEventListener('click', () => running?.abort());

  form.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && running) {
      e.preventDefault();
      running.abort();
    }
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (running) return;
    clearErrors(form);
    result.replaceChildren();
    const problems = [];
    let manifest = {};
    if (extra.value.trim()) {
      try {
        manifest = JSON.parse(extra.value);
        if (!manifest || typeof manifest !== 'object' || Array.isArray(manifest)) throw new Error('it must be a JSON object');
      } catch (err) {
        problems.push({ el: extra, message: `This is not a JSON object: ${err.message}` });
      }
    }
    if (!fields.name.value.trim()) problems.push({ el: fields.name, message: 'Enter the image name.' });
    if (!fields.version.value.trim()) problems.push({ el: fields.version, message: 'Enter the version.' });
    const chosen = file.files?.[0];
    if (!chosen) problems.push({ el: file, message: 'Choose the image file.' });
    if (problems.length) {
      showProblems(form, problems);
      return;
    }
    for (const key of OWN) {
      const value = fields[key].value.trim();
      if (key === 'public') {
        if (value) manifest.public = value === 'true';
      } else if (value) {
        manifest[key] = value;
      } else if (!['name', 'version', 'os', 'type'].includes(key)) {
        delete manifest[key];
      }
    }
    progress.value = 0;
    progressText.textContent = '';
    progressBox.hidden = false;
    submit.disabled = true;
    cancel.hidden = false;
    live.textContent = `Uploading ${chosen.name}…`;
    let lastSaid = -1;
    running = uploadImage(manifest, chosen, {
      activate: activate.checked,
      compression: compression.value,
      channel: channelField.hidden ? '' : channel.value,
      onProgress(loaded, total) {
        const pct = total > 0 ? Math.min(100, (loaded / total) * 100) : 0;
        progress.value = pct;
        progressText.textContent = `${humanSize(loaded)} of ${humanSize(total)} (${Math.floor(pct)}%)`;
        const decile = Math.floor(pct / 25);
        if (decile !== lastSaid) {
          lastSaid = decile;
          live.textContent = `Uploading: ${Math.floor(pct)}%`;
        }
        if (pct >= 100) live.textContent = 'Uploaded; the server is checking and storing the file…';
      },
    });
    let image;
    try {
      image = await running.promise;
    } catch (err) {
      live.textContent = '';
      progressBox.hidden = true;
      if (err.code === 'UnauthorizedError') {
        showApiError(form, err, () => null);
        signIn.open();
      } else {
        showApiError(form, err, fieldFor);
      }
      return;
    } finally {
      running = null;
      submit.disabled = false;
      cancel.hidden = true;
    }
    progress.value = 100;
    live.textContent = '';
    form.reset();
    progressBox.hidden = true;
    loadCatalog();
    result.replaceChildren(h('div', { class: 'note', role: 'status', id: 'upload-done' },
      'Published ', h('a', { href: `#/image/${image.uuid}`, id: 'upload-done-link' }, `${image.name} ${image.version}`),
      ` (${image.state}).`));
    $('#upload-done-link').focus();
  });

  /** One option per channel of the server, the default one chosen (also after a reset); none hides the picker. */
  let channelsShown = null;
  function fillChannels(list) {
    if (list === channelsShown) return;
    channelsShown = list;
    const keep = channel.value;
    channel.replaceChildren(...list.map((c) => {
      const option = h('option', { value: c.name, text: c.description ? `${c.name}: ${c.description}` : c.name });
      option.defaultSelected = c.default;
      return option;
    }));
    if (list.some((c) => c.name === keep)) channel.value = keep;
    channelField.hidden = list.length === 0;
  }

  return {
    section,
    show() {
      const signedIn = Boolean(auth.header);
      form.hidden = !signedIn;
      $('#upload-signin').hidden = signedIn;
      $('#upload-title').focus();
      loadChannels().then(fillChannels);
    },
  };
}
