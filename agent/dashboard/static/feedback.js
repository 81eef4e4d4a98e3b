/**
 * Telling the person what happened: the error banner, the polite live region, the confirm
 * dialog and copying to the clipboard.
 */

import { setText } from './dom.js';

const $ = (id) => document.getElementById(id);

/** Show an error (an ApiError or any Error) in the banner, with what to do next. */
export function showError(error, { context = '' } = {}) {
  const banner = $('error-banner');
  let message;
  if (error && error.what && error.subject) message = `${capital(error.subject)}: ${error.what}`;
  else message = error?.what || error?.message || String(error);
  // The agent's subject already says what was concerned; the context says it only otherwise.
  if (context && !error?.subject) message = `${context}: ${message}`;
  setText($('error-banner-message'), message);
  const hint = $('error-banner-hint');
  setText(hint, error?.hint ?? '');
  hint.hidden = !error?.hint;
  banner.dataset.code = error?.code ?? '';
  banner.dataset.status = String(error?.status ?? '');
  banner.hidden = false;
}

export function clearError() {
  const banner = $('error-banner');
  if (!banner.hidden) banner.hidden = true;
}

export function wireBanner() {
  $('error-banner-close').addEventListener('click', () => {
    clearError();
    document.getElementById('main').focus();
  });
}

let clearTimer = null;

/** Say something through the polite live region (state changes, results of actions). */
export function announce(text) {
  const region = $('announcer');
  // A new node per message: screen readers announce additions, and repeats still count.
  const line = document.createElement('p');
  line.textContent = text;
  region.append(line);
  while (region.childElementCount > 5) region.firstElementChild.remove();
  clearTimeout(clearTimer);
  clearTimer = setTimeout(() => region.replaceChildren(), 10000);
}

/**
 * Ask before something that cannot be undone. Resolves true when confirmed; focus goes back
 * to where it was.
 */
export function confirmAction({ title, text, confirm = 'Confirm', danger = true }) {
  const dialog = $('confirm-dialog');
  const back = document.activeElement;
  setText($('confirm-title'), title);
  setText($('confirm-text'), text);
  const ok = $('confirm-ok');
  setText(ok, confirm);
  ok.className = danger ? 'button button-danger' : 'button button-primary';
  return new Promise((resolve) => {
    dialog.addEventListener(
      'close',
      () => {
        resolve(dialog.returnValue === 'ok');
        if (back && document.contains(back)) back.focus();
      },
      { once: true },
    );
    dialog.returnValue = 'cancel';
    dialog.showModal();
    $('confirm-cancel').focus();
  });
}

/** Put `text` on the clipboard; true when it worked. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Without clipboard permission: copy through a selected, off-screen text field.
    const field = document.createElement('textarea');
    field.value = text;
    field.setAttribute('readonly', '');
    field.className = 'visually-hidden';
    document.body.append(field);
    field.select();
    let done = false;
    try {
      done = document.execCommand('copy');
    } catch {
      done = false;
    }
    field.remove();
    return done;
  }
}

function capital(text) {
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : text;
}
