/*
 * Signing in and out: the sign-in dialog (a user name and password, or a
 * token, checked with GET /ping before they are kept) and the account
 * part of the page header.
 */
import { auth, api, basicHeader, requestHeaders, signedIn, signedOut } from './api.js';
import { $, h } from './dom.js';
import { clearErrors, showProblems } from './forms.js';

/** Builds the sign-in dialog and wires the header's buttons; `onChange` runs after each sign-in or sign-out. */
export function createSignIn({ onChange }) {
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
    signedIn(header, who, keep.checked);
    opener = null;
    dialog.close();
    onChange();
  });

  $('#signin-button').addEventListener('click', () => open());
  $('#signout-button').addEventListener('click', () => {
    signedOut();
    onChange();
    $('#signin-button').focus();
  });

  function open() {
    opener = document.activeElement;
    clearErrors(form);
    dialog.showModal();
    (kind() === 'password' ? (user.value ? password : user) : token).focus();
  }

  return { open };
}

/** Shows who is signed in, and the buttons that fit, in the page header. */
export function updateAccount() {
  const signedIn = Boolean(auth.header);
  $('#who').hidden = !signedIn;
  $('#who').textContent = signedIn ? (auth.user === 'token' ? 'Signed in with a token' : `Signed in as ${auth.user}`) : '';
  $('#upload-link').hidden = !signedIn;
  $('#signin-button').hidden = signedIn;
  $('#signout-button').hidden = !signedIn;
}
