/*
 * Widgets more than one view uses: a command to copy, and a modal question.
 */
import { h } from './dom.js';

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
export function commandLine(id, text, label) {
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

/** A modal question; resolves true when confirmed. Escape and Cancel say no. */
export function confirmDialog({ title, text, confirm, danger = false }) {
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
