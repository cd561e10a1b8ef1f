/*
 * Errors shown in forms: each next to its field, described by it for
 * screen readers, with a summary that links to them.
 */
import { h } from './dom.js';
import { fieldErrorWords } from './errors.js';

export function clearErrors(form) {
  for (const el of form.querySelectorAll('.field-error, .summary')) el.remove();
  for (const el of form.querySelectorAll('[aria-invalid]')) {
    el.removeAttribute('aria-invalid');
    const ids = (el.getAttribute('aria-describedby') ?? '').split(/\s+/).filter((id) => id && !id.endsWith('-error'));
    if (ids.length) el.setAttribute('aria-describedby', ids.join(' '));
    else el.removeAttribute('aria-describedby');
  }
}

/** Shows each problem under its field, {el, message}, and focuses the first field. */
export function showProblems(form, problems, summary) {
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

function labelOf(el) {
  const label = el.id ? document.querySelector(`label[for="${el.id}"]`) : null;
  return (label?.firstChild?.textContent ?? el.name ?? el.id).trim();
}

/** The API's field errors in words, each next to its field (`fieldFor` maps a field name to an input). */
export function showApiError(form, err, fieldFor) {
  const problems = [];
  const unplaced = [];
  for (const e of err.errors) {
    const field = String(e.field ?? '');
    const words = fieldErrorWords(e);
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
