/*
 * The catalog as loaded: every image, of every channel, from one
 * GET /images?state=all&channel=*,
 * indexed once, and sorted orders kept until the next load; and the
 * server's channels (none on a server without), from GET /channels. Views listen
 * with onCatalogChange(); the page's data-catalog attribute says where the
 * load is (idle, loading, ready, error) for the browser tests.
 */
import { api, readAll } from './api.js';
import { channelList, comparator, defaultChannel, indexCatalog } from './records.js';

const empty = () => ({ all: [], byUuid: new Map(), byName: new Map(), dependents: new Map(), sorted: new Map() });

export const data = {
  status: 'idle', // idle, loading, ready, error
  error: null,
  ...empty(), // all records; byUuid; byName: name -> records, newest first; dependents: origin uuid -> records; sorted: "key dir" -> records
  timing: {},
  loading: null,
  channels: [], // [{name, description, default}], none on a server without channels
  defaultChannel: '', // its name, '' for none
};

let channelsLoad = null;

/**
 * The server's channels, asked once and again on every catalog load (a
 * sign-in may open a server that shows nothing to strangers). A server
 * without channels has no GET /channels: an error, which means none.
 */
export function loadChannels(fresh = false) {
  if (!channelsLoad || fresh) {
    channelsLoad = api('GET', 'channels').then(channelList, () => []);
  }
  return channelsLoad;
}

const listeners = [];
export const onCatalogChange = (fn) => listeners.push(fn);

/** (Re)loads the catalog; a newer load makes an older one's answer moot. */
export function loadCatalog() {
  const started = performance.now();
  data.status = 'loading';
  document.body.dataset.catalog = 'loading';
  const loading = Promise.all([readAll('images?state=all'), loadChannels(true)]).then(([list, channels]) => {
    if (data.loading !== loading) return;
    const fetched = performance.now();
    Object.assign(data, { status: 'ready', error: null, ...indexCatalog(list), sorted: new Map(), channels, defaultChannel: defaultChannel(channels) });
    data.timing = { fetchMs: fetched - started, prepareMs: performance.now() - fetched };
  }, (err) => {
    if (data.loading !== loading) return;
    Object.assign(data, { status: 'error', error: err, ...empty() });
  }).then(() => {
    if (data.loading !== loading) return;
    document.body.dataset.catalog = data.status;
    for (const fn of listeners) fn();
  });
  data.loading = loading;
  return loading;
}

/** Every record in the table's order by `key` and `dir`, sorted once per load. */
export function sortedRecords(key, dir) {
  const id = `${key} ${dir}`;
  let list = data.sorted.get(id);
  if (!list) {
    list = data.all.slice().sort(comparator(key, dir));
    data.sorted.set(id, list);
  }
  return list;
}
