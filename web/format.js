/*
 * Numbers, sizes and dates as the catalog shows them. Pure: nothing here
 * touches the page, so the unit tests import it in Node.
 */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** Bytes in binary units, one decimal below 10 ("1.5 MiB", "12 GiB"); "—" for no size. */
export function humanSize(n) {
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
export const fmt = (n) => numberFormat.format(n);
export const plural = (n, one, many = `${one}s`) => `${fmt(n)} ${n === 1 ? one : many}`;
/** The day of an ISO date; "—" for none. */
export const shortDate = (iso) => (typeof iso === 'string' && iso ? iso.slice(0, 10) : '—');
/** Names and versions compare as people read them: "1.10" after "1.9", case ignored. */
export const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
