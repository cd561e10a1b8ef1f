/*
 * The catalog view (#/): every image, searched, filtered, sorted and
 * grouped in the page. The table draws only the rows in view (fixed row
 * height), so 10,000 images cost what 50 do.
 */
import { auth } from '../api.js';
import { data, loadCatalog, sortedRecords } from '../catalog-data.js';
import { $, h, perFrame } from '../dom.js';
import { collator, fmt, humanSize, plural, shortDate } from '../format.js';
import { imageMatcher } from '../query.js';
import { catalogRows, imageChannels } from '../records.js';
import { commandLine } from '../widgets.js';

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

/** Builds the view into #catalog-view; `base` is this server's URL for imgadm. */
export function createCatalogView({ base, signIn }) {
  const section = $('#catalog-view');
  const state = { q: '', os: '', type: '', state: '', channel: '', sort: 'published', dir: -1, group: false, expanded: new Set() };
  const OVERSCAN = 12;
  const vt = { rows: [], start: 0, end: 0, rowH: 36, els: [] };
  let matchedCount = 0;
  let groupCount = 0;

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
  // Shown on a server with channels only, once they are known.
  const channelSelect = h('select', {
    id: 'channel-filter',
    onchange: () => {
      state.channel = channelSelect.value;
      update();
    },
  }, h('option', { value: '', text: 'All channels' }));
  const channelField = h('div', { class: 'field', hidden: true }, h('label', { for: 'channel-filter' }, 'Channel'), channelSelect);
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
      commandLine('cmd-catalog-sources', `imgadm sources -a ${base}`, 'Copy the imgadm sources command')),
    h('div', { class: 'controls', role: 'search', 'aria-label': 'Find images' },
      h('div', { class: 'field grow' },
        h('label', { for: 'search' }, 'Search'),
        search,
        h('span', { id: 'search-hint', class: 'hint' }, 'Press / to search from anywhere, Escape to clear.')),
      channelField,
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
    fillChannels();
  }

  /** One option per channel of the server, in its order, with how many images are in it. */
  function fillChannels() {
    const keep = channelSelect.value;
    while (channelSelect.options.length > 1) channelSelect.remove(1);
    const counts = new Map();
    for (const r of data.all) {
      for (const c of imageChannels(r.channels, data.defaultChannel)) counts.set(c, (counts.get(c) ?? 0) + 1);
    }
    for (const c of data.channels) {
      channelSelect.append(h('option', {
        value: c.name, text: `${c.name}${c.default ? ', the default' : ''} (${fmt(counts.get(c.name) ?? 0)})`, title: c.description || null,
      }));
    }
    channelSelect.value = data.channels.some((c) => c.name === keep) ? keep : '';
    state.channel = channelSelect.value;
    channelField.hidden = data.channels.length === 0;
  }

  /** The rows to show: records, or group heads each followed by their versions when expanded. */
  function computeRows() {
    const match = imageMatcher({ ...state, defaultChannel: data.defaultChannel });
    const { rows, matched, groups } = catalogRows(sortedRecords(state.sort, state.dir), data.byName, { match, group: state.group, expanded: state.expanded });
    matchedCount = matched;
    groupCount = groups;
    return rows;
  }

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
    for (const c of r.channels) nameCell.append(h('span', { class: 'channel', text: c }));
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
}
