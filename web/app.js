/*
 * The web catalog of smartos-image-server: plain JavaScript, no framework,
 * no build step, and no request to anything but this server.
 *
 * Views (client-side routes in the URL fragment):
 *   #/                 the catalog: every image from one GET /images?state=all,
 *                      searched, filtered, sorted and grouped in the page; the
 *                      table draws only the rows in view (fixed row height),
 *                      so 10,000 images cost what 50 do
 *   #/image/<uuid>     one image: every manifest field, origin chain, versions,
 *                      download, sha1, imgadm commands, publisher actions
 *   #/upload           publish an image (multipart POST /images?activate=true)
 *
 * Credentials are the API's own (HTTP Basic or a bearer token), sent by the
 * script as an Authorization header; they live in memory, or in this tab's
 * sessionStorage if the publisher asks, never in a cookie. Requests carry
 * X-Requested-With so that a wrong password brings no browser login prompt.
 */
(() => {
  'use strict';

  /* ---------------------------------------------------------------- helpers */

  const $ = (sel, root = document) => root.querySelector(sel);

  /** document.createElement with properties, attributes, listeners and children. */
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null || value === false) continue;
        if (key === 'class') el.className = value;
        else if (key === 'text') el.textContent = value;
        else if (key === 'dataset') Object.assign(el.dataset, value);
        else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
        else if (key === 'value' || key === 'checked' || key === 'selected') el[key] = value;
        else el.setAttribute(key, value === true ? '' : String(value));
      }
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === undefined || kid === null || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  const meta = (name) => {
    const value = document.querySelector(`meta[name="${name}"]`)?.getAttribute('content') ?? '';
    return value.includes('{{') ? '' : value;
  };
  /** This server's public URL, as imgadm should be given it. */
  const BASE = (meta('image-server-base') || location.origin).replace(/\/+$/, '');
  const apiUrl = (path) => new URL(path, document.baseURI).href;

  const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  function humanSize(n) {
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return '—';
    let v = n;
    let i = 0;
    while (v >= 1024 && i < UNITS.length - 1) {
      v /= 1024;
      i += 1;
    }
    if (i === 0) return `${v} B`;
    return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${UNITS[i]}`;
  }
  const numberFormat = new Intl.NumberFormat('en-US');
  const fmt = (n) => numberFormat.format(n);
  const plural = (n, one, many = `${one}s`) => `${fmt(n)} ${n === 1 ? one : many}`;
  const shortDate = (iso) => (typeof iso === 'string' && iso ? iso.slice(0, 10) : '—');
  const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });
  const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

  /** Runs `fn` at most once per animation frame. */
  function perFrame(fn) {
    let queued = false;
    return () => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => {
        queued = false;
        fn();
      });
    };
  }

  /* ---------------------------------------------------------- credentials */

  const AUTH_KEY = 'smartos-image-server.auth';
  const auth = { header: '', user: '' };
  try {
    const saved = JSON.parse(sessionStorage.getItem(AUTH_KEY) || 'null');
    if (saved && typeof saved.header === 'string' && typeof saved.user === 'string') Object.assign(auth, saved);
  } catch {
    // no sessionStorage, or nothing usable in it
  }

  function basicHeader(user, password) {
    const bytes = new TextEncoder().encode(`${user}:${password}`);
    let binary = '';
    for (const b of bytes) binary += String.fromCharCode(b);
    return `Basic ${btoa(binary)}`;
  }

  function requestHeaders(extra = {}) {
    const out = { Accept: 'application/json', 'X-Requested-With': 'XMLHttpRequest', ...extra };
    if (auth.header) out.Authorization = auth.header;
    return out;
  }

  /* ------------------------------------------------------------------ API */

  /** An error answer of the API, {code, message, errors: [{field, code, message}]}, or a failure to get one. */
  class ApiError extends Error {
    constructor(status, body) {
      super(body && typeof body.message === 'string' && body.message ? body.message : `The server answered ${status}.`);
      this.status = status;
      this.code = body && typeof body.code === 'string' ? body.code : '';
      this.errors = body && Array.isArray(body.errors) ? body.errors.filter((e) => e && typeof e === 'object') : [];
    }
  }

  function parseBody(status, text) {
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (status >= 200 && status < 300) return data;
    throw new ApiError(status, data && typeof data === 'object' ? data : null);
  }

  async function api(method, path, body, headers = requestHeaders()) {
    let res;
    try {
      res = await fetch(apiUrl(path), {
        method,
        headers: body === undefined ? headers : { ...headers, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'omit',
        cache: 'no-cache',
      });
    } catch {
      throw new ApiError(0, { code: 'NetworkError', message: 'The server could not be reached.' });
    }
    return parseBody(res.status, await res.text());
  }

  /** Multipart CreateImage with upload progress: the manifest part first, then the file. */
  function uploadImage(manifest, file, { activate, compression, onProgress }) {
    const xhr = new XMLHttpRequest();
    const promise = new Promise((resolve, reject) => {
      const query = new URLSearchParams();
      if (activate) query.set('activate', 'true');
      if (compression) query.set('compression', compression);
      const qs = query.toString();
      xhr.open('POST', apiUrl(`images${qs ? `?${qs}` : ''}`));
      for (const [name, value] of Object.entries(requestHeaders())) xhr.setRequestHeader(name, value);
      xhr.upload.addEventListener('progress', (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size));
      xhr.addEventListener('load', () => {
        try {
          resolve(parseBody(xhr.status, xhr.responseText));
        } catch (err) {
          reject(err);
        }
      });
      xhr.addEventListener('error', () => reject(new ApiError(0, {
        code: 'NetworkError', message: 'The connection was lost before the server answered.',
      })));
      xhr.addEventListener('abort', () => reject(new ApiError(0, { code: 'Aborted', message: 'The upload was cancelled.' })));
      const form = new FormData();
      form.append('manifest', JSON.stringify(manifest));
      form.append('file', file, file.name || 'image');
      xhr.send(form);
    });
    return { promise, abort: () => xhr.abort() };
  }

  /* -------------------------------------------------------------- catalog data */

  const data = {
    status: 'idle', // idle, loading, ready, error
    error: null,
    all: [],
    byUuid: new Map(),
    byName: new Map(), // name -> records, newest first
    dependents: new Map(), // origin uuid -> records
    sorted: new Map(), // "key dir" -> records in that order
    timing: {},
    loading: null,
  };

  function toRecord(m) {
    const file = Array.isArray(m.files) && m.files[0] && typeof m.files[0] === 'object' ? m.files[0] : null;
    const str = (v) => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));
    const r = {
      m,
      uuid: str(m.uuid),
      name: str(m.name),
      version: str(m.version),
      os: str(m.os),
      type: str(m.type),
      size: file && typeof file.size === 'number' ? file.size : -1,
      published: str(m.published_at),
      state: str(m.state),
      desc: str(m.description),
      isPublic: m.public !== false,
    };
    r.hay = `${r.name}\u0000${r.version}\u0000${r.uuid}\u0000${r.desc}\u0000${r.os}\u0000${r.type}`.toLowerCase();
    return r;
  }

  const byNewest = (a, b) => (a.published < b.published ? 1 : a.published > b.published ? -1 : collator.compare(b.version, a.version));

  function loadCatalog() {
    const started = performance.now();
    data.status = 'loading';
    document.body.dataset.catalog = 'loading';
    const loading = api('GET', 'images?state=all').then((list) => {
      if (data.loading !== loading) return;
      const fetched = performance.now();
      const all = Array.isArray(list) ? list.filter((m) => m && typeof m === 'object').map(toRecord) : [];
      const byUuid = new Map();
      const byName = new Map();
      const dependents = new Map();
      for (const r of all) {
        byUuid.set(r.uuid, r);
        let group = byName.get(r.name);
        if (!group) byName.set(r.name, (group = []));
        group.push(r);
        if (typeof r.m.origin === 'string') {
          let deps = dependents.get(r.m.origin);
          if (!deps) dependents.set(r.m.origin, (deps = []));
          deps.push(r);
        }
      }
      for (const group of byName.values()) group.sort(byNewest);
      Object.assign(data, { status: 'ready', error: null, all, byUuid, byName, dependents, sorted: new Map() });
      data.timing = { fetchMs: fetched - started, prepareMs: performance.now() - fetched };
    }, (err) => {
      if (data.loading !== loading) return;
      Object.assign(data, { status: 'error', error: err, all: [], byUuid: new Map(), byName: new Map(), dependents: new Map(), sorted: new Map() });
    }).then(() => {
      if (data.loading !== loading) return;
      document.body.dataset.catalog = data.status;
      catalogView.update();
      if (current.view === 'image') imageView.refreshRelated();
    });
    data.loading = loading;
    return loading;
  }

  /* ------------------------------------------------------------- the catalog */

  const COLUMNS = [
    { key: 'name', label: 'Name' },
    { key: 'version', label: 'Version' },
    { key: 'os', label: 'OS' },
    { key: 'type', label: 'Type' },
    { key: 'size', label: 'Size', num: true },
    { key: 'published', label: 'Published', cls: 'date' },
    { key: 'state', label: 'State' },
    { key: 'desc', label: 'Description' },
  ];

  function comparator(key, dir) {
    return (a, b) => {
      let c;
      if (key === 'size') c = a.size - b.size;
      else if (key === 'published') c = a.published < b.published ? -1 : a.published > b.published ? 1 : 0;
      else c = collator.compare(a[key], b[key]);
      if (c === 0 && key !== 'name') c = collator.compare(a.name, b.name);
      if (c === 0 && key !== 'version') c = collator.compare(a.version, b.version);
      if (c === 0) c = a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0;
      return c * dir;
    };
  }

  function sortedRecords(key, dir) {
    const id = `${key} ${dir}`;
    let list = data.sorted.get(id);
    if (!list) {
      list = data.all.slice().sort(comparator(key, dir));
      data.sorted.set(id, list);
    }
    return list;
  }

  const catalogView = (() => {
    const section = $('#catalog-view');
    const state = { q: '', os: '', type: '', state: '', sort: 'published', dir: -1, group: false, expanded: new Set() };
    const OVERSCAN = 12;
    const vt = { rows: [], start: 0, end: 0, rowH: 36, els: [] };
    let matchedCount = 0;

    const search = h('input', {
      id: 'search', type: 'search', autocomplete: 'off', spellcheck: 'false',
      placeholder: 'name, version, uuid or description', 'aria-describedby': 'search-hint',
      oninput: () => {
        state.q = search.value;
        update();
      },
      onkeydown: (e) => {
        if (e.key === 'Escape' && search.value) {
          e.preventDefault();
          search.value = '';
          state.q = '';
          update();
        }
      },
    });
    const select = (id, label) => {
      const el = h('select', {
        id,
        onchange: () => {
          state[id.slice('filter-'.length)] = el.value;
          update();
        },
      }, h('option', { value: '', text: label }));
      return el;
    };
    const osSelect = select('filter-os', 'Any OS');
    const typeSelect = select('filter-type', 'Any type');
    const stateSelect = select('filter-state', 'Any state');
    const groupBox = h('input', {
      id: 'group', type: 'checkbox',
      onchange: () => {
        state.group = groupBox.checked;
        update();
      },
    });
    const status = h('p', { id: 'catalog-status', class: 'status', role: 'status', 'aria-live': 'polite' });
    const headRow = h('tr', { 'aria-rowindex': 1 });
    const table = h('table', { id: 'catalog-table', class: 'catalog', 'aria-labelledby': 'catalog-title', 'aria-describedby': 'catalog-status' },
      h('thead', null, headRow));
    const tbody = h('tbody');
    const topSpacer = h('tr', { class: 'spacer', 'aria-hidden': 'true' }, h('td', { colspan: COLUMNS.length }));
    const bottomSpacer = h('tr', { class: 'spacer', 'aria-hidden': 'true' }, h('td', { colspan: COLUMNS.length }));
    tbody.append(topSpacer, bottomSpacer);
    table.append(tbody);
    const empty = h('p', { class: 'empty', hidden: true });
    const retry = h('p', { class: 'empty', hidden: true });

    for (const col of COLUMNS) {
      const th = h('th', { scope: 'col', class: `${col.cls ?? col.key}${col.num ? ' num' : ''}` });
      const button = h('button', {
        type: 'button',
        dataset: { sort: col.key },
        onclick: () => {
          if (state.sort === col.key) state.dir = -state.dir;
          else {
            state.sort = col.key;
            state.dir = col.key === 'published' || col.key === 'size' ? -1 : 1;
          }
          update();
        },
      }, col.label, h('span', { class: 'sort-mark', 'aria-hidden': 'true' }));
      th.append(button);
      headRow.append(th);
    }

    section.append(
      h('h1', { id: 'catalog-title', tabindex: -1 }, 'Images'),
      h('div', { class: 'source-box' },
        h('p', null, 'Add this server as an image source on a SmartOS host, then import any image below:'),
        commandLine('cmd-catalog-sources', `imgadm sources -a ${BASE}`, 'Copy the imgadm sources command')),
      h('div', { class: 'controls', role: 'search', 'aria-label': 'Find images' },
        h('div', { class: 'field grow' },
          h('label', { for: 'search' }, 'Search'),
          search,
          h('span', { id: 'search-hint', class: 'hint' }, 'Press / to search from anywhere, Escape to clear.')),
        h('div', { class: 'field' }, h('label', { for: 'filter-os' }, 'OS'), osSelect),
        h('div', { class: 'field' }, h('label', { for: 'filter-type' }, 'Type'), typeSelect),
        h('div', { class: 'field' }, h('label', { for: 'filter-state' }, 'State'), stateSelect),
        h('label', { class: 'check', for: 'group' }, groupBox, 'Group by name')),
      status,
      h('div', { class: 'table-wrap' }, table, empty),
      retry,
    );

    function fillSelect(el, values, labels = {}) {
      const keep = el.value;
      while (el.options.length > 1) el.remove(1);
      const counts = new Map();
      for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
      for (const v of [...counts.keys()].sort(collator.compare)) {
        el.append(h('option', { value: v, text: `${labels[v] ?? (v || '(none)')} (${fmt(counts.get(v))})` }));
      }
      el.value = counts.has(keep) ? keep : '';
      const key = el.id.slice('filter-'.length);
      state[key] = el.value;
    }

    let filledFor = null;
    function fillFilters() {
      if (filledFor === data.all) return;
      filledFor = data.all;
      fillSelect(osSelect, data.all.map((r) => r.os));
      fillSelect(typeSelect, data.all.map((r) => r.type));
      fillSelect(stateSelect, data.all.map((r) => r.state));
    }

    /** The rows to show: records, or group heads each followed by their versions when expanded. */
    function computeRows() {
      const words = state.q.toLowerCase().split(/\s+/).filter(Boolean);
      const { os, type } = state;
      const st = state.state;
      const match = (r) => (!os || r.os === os) && (!type || r.type === type) && (!st || r.state === st)
        && (words.length === 0 || words.every((w) => r.hay.includes(w)));
      const matched = sortedRecords(state.sort, state.dir).filter(match);
      matchedCount = matched.length;
      if (!state.group) return matched.map((r) => ({ kind: 'image', r, key: r.uuid }));
      const groups = new Map();
      for (const r of matched) {
        if (!groups.has(r.name)) groups.set(r.name, []);
      }
      const rows = [];
      for (const name of groups.keys()) {
        const members = (data.byName.get(name) ?? []).filter(match);
        const g = { name, members, latest: members[0] };
        rows.push({ kind: 'group', g, r: g.latest, key: `group:${name}` });
        if (state.expanded.has(name) && members.length > 1) {
          for (const r of members) rows.push({ kind: 'member', g, r, key: r.uuid });
        }
      }
      groupCount = groups.size;
      return rows;
    }
    let groupCount = 0;

    function cell(cls, text, title) {
      const td = document.createElement('td');
      td.className = cls;
      td.textContent = text;
      if (title) td.title = title;
      return td;
    }

    function makeRow(entry, index) {
      const { r } = entry;
      const tr = document.createElement('tr');
      tr.className = `row ${entry.kind}`;
      tr.setAttribute('aria-rowindex', String(index + 2));
      tr.dataset.index = String(index);
      tr.dataset.uuid = r.uuid;
      const nameCell = document.createElement('td');
      nameCell.className = 'name';
      if (entry.kind === 'group') {
        tr.dataset.group = entry.g.name;
        const n = entry.g.members.length;
        if (n > 1) {
          const open = state.expanded.has(entry.g.name);
          nameCell.append(h('button', {
            type: 'button', class: 'toggle', 'aria-expanded': String(open),
            'aria-label': `${open ? 'Hide' : 'Show'} the ${fmt(n)} versions of ${entry.g.name}`,
            dataset: { toggle: entry.g.name }, text: open ? '▾' : '▸',
          }));
        }
        nameCell.append(h('a', { href: `#/image/${r.uuid}`, title: r.name }, r.name || '(no name)'),
          h('span', { class: 'count' }, n > 1 ? `${fmt(n)} versions` : '1 version'));
      } else {
        nameCell.append(h('a', { href: `#/image/${r.uuid}`, title: `${r.name} ${r.version}` }, r.name || '(no name)'));
      }
      if (!r.isPublic) nameCell.append(h('span', { class: 'private', text: 'private' }));
      const stateCell = document.createElement('td');
      stateCell.className = 'state';
      stateCell.append(h('span', { class: `badge badge-${r.state}`, text: r.state || '—' }));
      tr.append(
        nameCell,
        cell('version', r.version, r.version),
        cell('os', r.os),
        cell('type', r.type),
        cell('size num', humanSize(r.size), r.size >= 0 ? `${fmt(r.size)} bytes` : ''),
        cell('date', shortDate(r.published), r.published),
        stateCell,
        cell('desc', r.desc, r.desc),
      );
      return tr;
    }

    /** Draws the rows in view (plus a margin), leaving rows that stay in view untouched (and focused). */
    function renderWindow(force = false) {
      if (section.hidden) return;
      const total = vt.rows.length;
      const top = tbody.getBoundingClientRect().top + window.scrollY;
      const viewTop = window.scrollY - top;
      let first = Math.max(0, Math.floor(viewTop / vt.rowH) - OVERSCAN);
      let last = Math.min(total, Math.ceil((viewTop + window.innerHeight) / vt.rowH) + OVERSCAN);
      if (last < first) last = first;
      first = Math.min(first, last);
      if (!force && first === vt.start && last === vt.end) return;
      const overlap = !force && first < vt.end && last > vt.start;
      if (!overlap) {
        for (const el of vt.els) el.remove();
        const frag = document.createDocumentFragment();
        vt.els = [];
        for (let i = first; i < last; i += 1) {
          const tr = makeRow(vt.rows[i], i);
          vt.els.push(tr);
          frag.append(tr);
        }
        tbody.insertBefore(frag, bottomSpacer);
      } else {
        while (vt.start < first) {
          vt.els.shift().remove();
          vt.start += 1;
        }
        while (vt.end > last) {
          vt.els.pop().remove();
          vt.end -= 1;
        }
        const before = [];
        for (let i = first; i < vt.start; i += 1) before.push(makeRow(vt.rows[i], i));
        if (before.length) topSpacer.after(...before);
        const after = [];
        for (let i = vt.end; i < last; i += 1) after.push(makeRow(vt.rows[i], i));
        if (after.length) bottomSpacer.before(...after);
        vt.els = [...before, ...vt.els, ...after];
      }
      vt.start = first;
      vt.end = last;
      topSpacer.firstChild.style.height = `${first * vt.rowH}px`;
      bottomSpacer.firstChild.style.height = `${(total - last) * vt.rowH}px`;
      const measured = vt.els[0]?.getBoundingClientRect().height;
      if (measured && Math.abs(measured - vt.rowH) > 0.5) {
        vt.rowH = measured;
        renderWindow(true);
      }
    }
    const onScroll = perFrame(() => renderWindow());
    window.addEventListener('scroll', onScroll, { passive: true });
    window.addEventListener('resize', perFrame(() => renderWindow(true)));

    function updateHeader() {
      for (const th of headRow.children) {
        const key = th.querySelector('button').dataset.sort;
        const mark = th.querySelector('.sort-mark');
        if (key === state.sort) {
          th.setAttribute('aria-sort', state.dir > 0 ? 'ascending' : 'descending');
          mark.textContent = state.dir > 0 ? ' ▲' : ' ▼';
        } else {
          th.removeAttribute('aria-sort');
          mark.textContent = '';
        }
      }
    }

    function update() {
      updateHeader();
      retry.hidden = true;
      if (data.status !== 'ready') {
        vt.rows = [];
        renderWindow(true);
        table.setAttribute('aria-rowcount', '1');
        if (data.status === 'error') {
          const err = data.error;
          status.textContent = '';
          retry.hidden = false;
          retry.replaceChildren(
            err && err.status === 401
              ? 'This server shows its images to signed-in users only. '
              : `The images could not be loaded: ${err ? err.message : 'unknown error'} `,
            err && err.status === 401 && !auth.header
              ? h('button', { type: 'button', onclick: () => signIn.open() }, 'Sign in')
              : h('button', { type: 'button', onclick: () => loadCatalog() }, 'Try again'),
          );
        } else {
          status.textContent = 'Loading images…';
        }
        return;
      }
      fillFilters();
      const started = performance.now();
      vt.rows = computeRows();
      const computed = performance.now();
      table.setAttribute('aria-rowcount', String(vt.rows.length + 1));
      status.dataset.count = String(matchedCount);
      status.dataset.total = String(data.all.length);
      const filtered = matchedCount !== data.all.length;
      status.textContent = `${filtered ? `${fmt(matchedCount)} of ` : ''}${plural(data.all.length, 'image')}`
        + `${state.group ? ` in ${plural(groupCount, 'name')}` : ''}${filtered ? ' match' : ''}`;
      empty.hidden = vt.rows.length > 0;
      empty.textContent = data.all.length === 0 ? 'This server has no images yet.' : 'No image matches.';
      renderWindow(true);
      const drawn = performance.now();
      data.timing.filterMs = computed - started;
      data.timing.renderMs = drawn - computed;
      window.imageServerCatalog = { timing: { ...data.timing }, rows: vt.rows.length, drawn: vt.els.length };
    }

    /** Brings row `index` into the DOM and view, and focuses its link (or its toggle). */
    function focusRow(index, what = 'a') {
      if (index < 0 || index >= vt.rows.length) return;
      if (index < vt.start + 1 || index >= vt.end - 1) {
        const top = tbody.getBoundingClientRect().top + window.scrollY;
        const rowTop = top + index * vt.rowH;
        if (rowTop < window.scrollY + vt.rowH * 2 || rowTop > window.scrollY + window.innerHeight - vt.rowH * 2) {
          window.scrollTo(0, rowTop - window.innerHeight / 2);
        }
        renderWindow();
      }
      const tr = vt.els[index - vt.start];
      const target = (what === 'toggle' && tr?.querySelector('.toggle')) || tr?.querySelector('a');
      target?.focus();
    }

    function toggleGroup(name, open) {
      const isOpen = state.expanded.has(name);
      if (open === isOpen) return;
      if (open ?? !isOpen) state.expanded.add(name);
      else state.expanded.delete(name);
      update();
      const index = vt.rows.findIndex((e) => e.kind === 'group' && e.g.name === name);
      focusRow(index, 'toggle');
    }

    tbody.addEventListener('click', (e) => {
      const toggle = e.target.closest('button[data-toggle]');
      if (toggle) toggleGroup(toggle.dataset.toggle);
    });
    tbody.addEventListener('keydown', (e) => {
      const tr = e.target.closest('tr.row');
      if (!tr) return;
      const index = Number(tr.dataset.index);
      const onToggle = e.target.matches('.toggle');
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        focusRow(index + (e.key === 'ArrowDown' ? 1 : -1), onToggle ? 'toggle' : 'a');
      } else if (e.key === 'Home' && e.ctrlKey) {
        e.preventDefault();
        focusRow(0);
      } else if (e.key === 'End' && e.ctrlKey) {
        e.preventDefault();
        focusRow(vt.rows.length - 1);
      } else if ((e.key === 'ArrowRight' || e.key === 'ArrowLeft') && tr.dataset.group) {
        e.preventDefault();
        toggleGroup(tr.dataset.group, e.key === 'ArrowRight');
      }
    });

    return {
      section,
      update,
      renderWindow,
      focusSearch: () => search.focus(),
      /** Focuses the row of `uuid` if it is drawn (coming back from its page). */
      focusImage(uuid) {
        const index = vt.rows.findIndex((e) => e.r && e.r.uuid === uuid);
        if (index >= vt.start && index < vt.end) {
          vt.els[index - vt.start].querySelector('a')?.focus({ preventScroll: true });
          return true;
        }
        return false;
      },
    };
  })();

  /* --------------------------------------------------------- copy commands */

  async function copyText(text, input) {
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        return true;
      }
    } catch {
      // fall back to a selection
    }
    input.focus();
    input.select();
    try {
      return document.execCommand('copy');
    } catch {
      return false;
    }
  }

  /** A read-only command with a Copy button that says whether copying worked. */
  function commandLine(id, text, label) {
    const input = h('input', { id, type: 'text', readonly: true, value: text, 'aria-label': label, spellcheck: 'false' });
    const said = h('span', { class: 'hint', role: 'status', 'aria-live': 'polite' });
    const button = h('button', {
      type: 'button', 'aria-label': label, dataset: { copy: id },
      onclick: async () => {
        const ok = await copyText(text, input);
        said.textContent = ok ? 'Copied' : 'Select the text and copy it';
        button.focus();
        setTimeout(() => {
          said.textContent = '';
        }, 2500);
      },
    }, 'Copy');
    return h('div', { class: 'cmd' }, input, button, said);
  }

  /* ------------------------------------------------------------- dialogs */

  /** A modal question; resolves true when confirmed. Escape and Cancel say no. */
  function confirmDialog({ title, text, confirm, danger = false }) {
    return new Promise((resolve) => {
      const cancelButton = h('button', { type: 'button', value: 'no' }, 'Cancel');
      const okButton = h('button', { type: 'button', class: `primary${danger ? ' danger' : ''}`, value: 'yes', id: 'confirm-ok' }, confirm);
      const dialog = h('dialog', { id: 'confirm-dialog', 'aria-labelledby': 'confirm-title', 'aria-describedby': 'confirm-text' },
        h('h2', { id: 'confirm-title', text: title }),
        h('p', { id: 'confirm-text', text }),
        h('div', { class: 'buttons' }, okButton, cancelButton));
      const opener = document.activeElement;
      let answer = false;
      okButton.addEventListener('click', () => {
        answer = true;
        dialog.close();
      });
      cancelButton.addEventListener('click', () => dialog.close());
      dialog.addEventListener('close', () => {
        dialog.remove();
        if (opener && opener.isConnected) opener.focus();
        resolve(answer);
      });
      document.body.append(dialog);
      dialog.showModal();
      (danger ? cancelButton : okButton).focus();
    });
  }

  /* ------------------------------------------------------------- sign in */

  const signIn = (() => {
    const user = h('input', { id: 'signin-user', type: 'text', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false' });
    const password = h('input', { id: 'signin-password', type: 'password', autocomplete: 'current-password' });
    const token = h('input', { id: 'signin-token', type: 'password', autocomplete: 'off', spellcheck: 'false' });
    const keep = h('input', { id: 'signin-keep', type: 'checkbox', checked: true });
    const byPassword = h('input', { type: 'radio', name: 'signin-kind', id: 'signin-kind-password', value: 'password', checked: true });
    const byToken = h('input', { type: 'radio', name: 'signin-kind', id: 'signin-kind-token', value: 'token' });
    const passwordFields = h('div', null,
      h('div', { class: 'f' }, h('label', { for: 'signin-user' }, 'User name'), user),
      h('div', { class: 'f' }, h('label', { for: 'signin-password' }, 'Password'), password));
    const tokenFields = h('div', { hidden: true },
      h('div', { class: 'f' }, h('label', { for: 'signin-token' }, 'Token'), token,
        h('span', { class: 'hint' }, 'As printed by image-server token NAME; sent as Authorization: Bearer.')));
    const submit = h('button', { type: 'submit', class: 'primary', id: 'signin-submit' }, 'Sign in');
    const cancel = h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel');
    const form = h('form', { novalidate: true },
      h('h2', { id: 'signin-title' }, 'Sign in to publish'),
      h('fieldset', null, h('legend', null, 'Sign in with'),
        h('label', { class: 'f inline', for: 'signin-kind-password' }, byPassword, 'a user name and password'),
        h('label', { class: 'f inline', for: 'signin-kind-token' }, byToken, 'a token')),
      passwordFields, tokenFields,
      h('label', { class: 'f inline', for: 'signin-keep' }, keep,
        h('span', null, 'Stay signed in in this tab ', h('span', { class: 'hint' }, '(kept in this tab\'s session storage, never in a cookie)'))),
      h('div', { class: 'buttons' }, submit, cancel));
    const dialog = h('dialog', { id: 'signin-dialog', 'aria-labelledby': 'signin-title' }, form);
    document.body.append(dialog);

    const kind = () => (byToken.checked ? 'token' : 'password');
    const showKind = () => {
      passwordFields.hidden = kind() !== 'password';
      tokenFields.hidden = kind() !== 'token';
    };
    byPassword.addEventListener('change', showKind);
    byToken.addEventListener('change', showKind);
    let opener = null;
    dialog.addEventListener('close', () => {
      password.value = '';
      token.value = '';
      clearErrors(form);
      if (opener && opener.isConnected) opener.focus();
    });

    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(form);
      let header;
      let who;
      if (kind() === 'password') {
        const problems = [];
        if (!user.value.trim()) problems.push({ el: user, message: 'Enter your user name.' });
        if (!password.value) problems.push({ el: password, message: 'Enter your password.' });
        if (problems.length) return showProblems(form, problems);
        header = basicHeader(user.value.trim(), password.value);
        who = user.value.trim();
      } else {
        if (!token.value.trim()) return showProblems(form, [{ el: token, message: 'Enter the token.' }]);
        header = `Bearer ${token.value.trim()}`;
        who = 'token';
      }
      submit.disabled = true;
      try {
        await api('GET', 'ping', undefined, { ...requestHeaders(), Authorization: header });
      } catch (err) {
        const el = kind() === 'password' ? password : token;
        const message = err.status === 401
          ? (kind() === 'password' ? 'This user name and password were not accepted.' : 'This token was not accepted.')
          : err.message;
        showProblems(form, [{ el, message }]);
        return;
      } finally {
        submit.disabled = false;
      }
      auth.header = header;
      auth.user = who;
      try {
        if (keep.checked) sessionStorage.setItem(AUTH_KEY, JSON.stringify(auth));
        else sessionStorage.removeItem(AUTH_KEY);
      } catch {
        // storage refused: memory only
      }
      opener = null;
      dialog.close();
      accountChanged();
    });

    return {
      open() {
        opener = document.activeElement;
        clearErrors(form);
        dialog.showModal();
        (kind() === 'password' ? (user.value ? password : user) : token).focus();
      },
    };
  })();

  function signOut() {
    auth.header = '';
    auth.user = '';
    try {
      sessionStorage.removeItem(AUTH_KEY);
    } catch {
      // nothing stored
    }
    accountChanged();
  }

  function updateAccount() {
    const signedIn = Boolean(auth.header);
    $('#who').hidden = !signedIn;
    $('#who').textContent = signedIn ? (auth.user === 'token' ? 'Signed in with a token' : `Signed in as ${auth.user}`) : '';
    $('#upload-link').hidden = !signedIn;
    $('#signin-button').hidden = signedIn;
    $('#signout-button').hidden = !signedIn;
  }

  function accountChanged() {
    updateAccount();
    loadCatalog();
    route();
    const focus = auth.header ? $('#upload-link') : $('#signin-button');
    if (!document.activeElement || document.activeElement === document.body) focus.focus();
  }

  $('#signin-button').addEventListener('click', () => signIn.open());
  $('#signout-button').addEventListener('click', () => {
    signOut();
    $('#signin-button').focus();
  });

  /* --------------------------------------------------------- field errors */

  function clearErrors(form) {
    for (const el of form.querySelectorAll('.field-error, .summary')) el.remove();
    for (const el of form.querySelectorAll('[aria-invalid]')) {
      el.removeAttribute('aria-invalid');
      const ids = (el.getAttribute('aria-describedby') ?? '').split(/\s+/).filter((id) => id && !id.endsWith('-error'));
      if (ids.length) el.setAttribute('aria-describedby', ids.join(' '));
      else el.removeAttribute('aria-describedby');
    }
  }

  /** Shows each problem under its field, {el, message}, and focuses the first field. */
  function showProblems(form, problems, summary) {
    const seen = new Map();
    for (const { el, message } of problems) {
      if (!el) continue;
      const id = `${el.id}-error`;
      let p = seen.get(el);
      if (!p) {
        p = h('p', { class: 'field-error', id });
        const anchor = el.closest('.f') ?? el.parentElement;
        anchor.append(p);
        seen.set(el, p);
        el.setAttribute('aria-invalid', 'true');
        const ids = (el.getAttribute('aria-describedby') ?? '').split(/\s+/).filter(Boolean);
        el.setAttribute('aria-describedby', [...ids, id].join(' '));
      } else {
        p.append(' ');
      }
      p.append(message);
    }
    if (summary) form.prepend(summary);
    const first = problems.find((p) => p.el)?.el;
    if (first) first.focus();
    else summary?.focus();
  }

  const CODE_WORDS = {
    MissingParameter: 'is required',
    Invalid: 'is not valid',
    Duplicate: 'is a duplicate',
  };

  /** The API's field errors in words, each next to its field (`fieldFor` maps a field name to an input). */
  function showApiError(form, err, fieldFor) {
    const problems = [];
    const unplaced = [];
    for (const e of err.errors) {
      const field = String(e.field ?? '');
      const words = typeof e.message === 'string' && e.message
        ? e.message
        : `"${field}" ${CODE_WORDS[e.code] ?? `was refused (${e.code})`}.`;
      const el = fieldFor(field);
      if (el) problems.push({ el, message: words });
      else unplaced.push(field ? `${field}: ${words}` : words);
    }
    if (problems.length === 0) {
      const el = fieldFor(`#${err.code}`);
      if (el) problems.push({ el, message: err.message });
    }
    const summary = h('div', { class: 'summary', role: 'alert', tabindex: -1, id: `${form.id || 'form'}-summary` },
      h('p', null, problems.length ? 'The image was not published:' : 'The server refused this:'),
      h('ul', null,
        h('li', null, err.message),
        problems.map(({ el, message }) => h('li', null, h('a', {
          href: `#${el.id}`,
          onclick: (e) => {
            e.preventDefault();
            el.focus();
          },
        }, labelOf(el)), `: ${message}`)),
        unplaced.map((text) => h('li', null, text))));
    showProblems(form, problems, summary);
    if (!problems.length) summary.focus();
  }

  function labelOf(el) {
    const label = el.id ? document.querySelector(`label[for="${el.id}"]`) : null;
    return (label?.firstChild?.textContent ?? el.name ?? el.id).trim();
  }

  /* ------------------------------------------------------------ image page */

  const imageView = (() => {
    const section = $('#image-view');
    let shown = null; // the manifest on screen
    let related = null; // its versions, dependents and origin chain (re-drawn when the catalog loads)

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
      let m;
      try {
        m = await api('GET', `images/${encodeURIComponent(uuid)}`);
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
          commandLine('cmd-sources', `imgadm sources -a ${BASE}`, 'Copy the imgadm sources command'),
          commandLine('cmd-import', `imgadm import ${m.uuid}`, 'Copy the imgadm import command')),
        h('section', { class: 'panel', 'aria-labelledby': 'file-title' },
          h('h2', { id: 'file-title' }, 'File'),
          h('dl', { class: 'facts' },
            fact('UUID', h('span', { class: 'mono' }, m.uuid), 'image-uuid'),
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
            o = await api('GET', `images/${encodeURIComponent(origin)}`);
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
      const run = (id, label, confirmText, danger, act) => h('button', {
        type: 'button', id, class: danger ? 'danger' : null,
        onclick: async () => {
          const yes = await confirmDialog({ title: `${label} ${m.name} ${m.version}?`, text: confirmText, confirm: label, danger });
          if (!yes) return;
          message.replaceChildren('Working…');
          try {
            await act();
          } catch (err) {
            message.replaceChildren(h('p', { class: 'field-error', role: 'alert', id: 'action-error' },
              `${label} failed: ${err.message}${err.code ? ` (${err.code})` : ''}`));
            return;
          }
          loadCatalog();
          if (id === 'action-delete') {
            location.hash = '#/';
            return;
          }
          const fresh = await api('GET', `images/${m.uuid}`).catch(() => null);
          if (fresh && current.view === 'image' && current.uuid === m.uuid) {
            draw(fresh);
            $('#action-result').replaceChildren(`${label}: done.`);
            $(`#${id}`)?.focus() ?? $('#image-title').focus();
          }
        },
      }, label);
      if (m.state === 'unactivated') {
        form.append(run('action-activate', 'Activate', 'The image becomes visible to imgadm and can no longer take a new file.', false,
          () => api('POST', `images/${m.uuid}?action=activate`)));
      }
      if (m.disabled) {
        form.append(run('action-enable', 'Enable', 'imgadm will list the image again.', false,
          () => api('POST', `images/${m.uuid}?action=enable`)));
      } else if (m.state === 'active') {
        form.append(run('action-disable', 'Disable', 'imgadm will no longer list the image; hosts that have it keep it.', false,
          () => api('POST', `images/${m.uuid}?action=disable`)));
      }
      form.append(run('action-delete', 'Delete', 'The image and its file are removed from this server. This cannot be undone.', true,
        () => api('DELETE', `images/${m.uuid}`)));
      return h('section', { class: 'panel', 'aria-labelledby': 'actions-title' },
        h('h2', { id: 'actions-title' }, 'Publisher actions'), form, message);
    }

    return {
      section,
      show,
      refreshRelated: () => {
        refreshRelated();
      },
    };
  })();

  /* --------------------------------------------------------------- upload */

  const uploadView = (() => {
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
        f('up-extra', 'More fields', extra, '(optional JSON object: requirements, tags, users, …)')),
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
      const direct = {
        '#ImageUuidAlreadyExists': fields.uuid, '#OriginDoesNotExist': fields.origin, '#Upload': file, '#Download': file,
        '#UnauthorizedError': null, manifest: manifestFile.files?.length ? manifestFile : extra, compression, file,
      };
      if (Object.hasOwn(direct, field)) return direct[field];
      const top = field.split(/[.[]/)[0];
      if (Object.hasOwn(fields, top)) return fields[top];
      if (top === 'files') return file;
      if (top === 'v' || top === 'owner') return manifestFile.files?.length ? manifestFile : extra;
      return field ? extra : null;
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

    return {
      section,
      show() {
        const signedIn = Boolean(auth.header);
        form.hidden = !signedIn;
        $('#upload-signin').hidden = signedIn;
        $('#upload-title').focus();
      },
    };
  })();

  /* --------------------------------------------------------------- routing */

  const current = { view: '', uuid: '' };
  let catalogScroll = 0;

  function route() {
    const hash = location.hash.replace(/^#/, '');
    if (hash && !hash.startsWith('/')) return; // an in-page anchor, such as the skip link's
    const image = /^\/image\/([0-9a-fA-F-]{36})\/?$/.exec(hash);
    const next = image ? 'image' : hash === '/upload' ? 'upload' : 'catalog';
    const from = { ...current };
    if (from.view === 'catalog' && next !== 'catalog') catalogScroll = window.scrollY;
    const previousUuid = from.view === 'image' ? from.uuid : '';
    current.view = next;
    current.uuid = image ? image[1].toLowerCase() : '';
    catalogView.section.hidden = next !== 'catalog';
    imageView.section.hidden = next !== 'image';
    uploadView.section.hidden = next !== 'upload';
    if (next === 'catalog') {
      document.title = 'SmartOS image server';
      if (from.view && from.view !== 'catalog') window.scrollTo(0, catalogScroll);
      catalogView.renderWindow(true);
      if (!(previousUuid && catalogView.focusImage(previousUuid)) && from.view) $('#catalog-title').focus({ preventScroll: true });
    } else if (next === 'image') {
      document.title = 'Image · SmartOS image server';
      window.scrollTo(0, 0);
      imageView.show(current.uuid);
    } else {
      document.title = 'Publish · SmartOS image server';
      window.scrollTo(0, 0);
      uploadView.show();
    }
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
})();
