// The Do Not Contact list page: sign in with an API key, then the list and its tools.
import { $, api, session, clearNotices, fieldError, alertError } from './api.js';
import * as filters from './filters.js';
import * as list from './list.js';
import * as addNew from './addnew.js';
import * as wizard from './wizard.js';
import * as check from './check.js';
import * as dryrun from './dryrun.js';
import * as overview from './overview.js';
import * as reviews from './reviews.js';

function showSignIn(message = '') {
  $('app').hidden = true;
  $('who').hidden = true;
  $('signin').hidden = false;
  fieldError(message ? $('api-key') : null, $('api-key-error'), message);
  $('api-key').focus();
}

// focus: after signing in, the list's heading takes the focus (where the user is now);
// on a reload nothing is focused (no focus ring on a heading nobody went to).
function showApp(focus = false) {
  const { name, accounts } = session.me;
  $('who-name').textContent = name;
  $('who-accounts').textContent = accounts.join(', ');
  $('who').hidden = false;
  $('signin').hidden = true;
  $('app').hidden = false;
  check.init(() => list.reload());
  filters.init(() => list.reset());
  list.init();
  addNew.init(() => list.first());
  wizard.init(() => list.reload());
  dryrun.init();
  reviews.init(() => list.reload());
  overview.init();
  list.open();
  if (focus) $('list-h').focus();
}

// Ask the API who the key is; true when it is a valid key.
async function whoAmI(key) {
  try {
    session.me = (await api('/v1/me', { key })).data;
    return true;
  } catch (err) {
    if (err.status === 401) return false;
    throw err;
  }
}

async function signIn(event) {
  event.preventDefault();
  clearNotices();
  const key = $('api-key').value.trim();
  if (!key) {
    showSignIn('Enter your API key.');
    return;
  }
  try {
    if (!(await whoAmI(key))) {
      showSignIn('This API key is not valid.');
      return;
    }
  } catch (err) {
    showSignIn(`Cannot sign in: ${err.message}`);
    return;
  }
  session.set(key);
  $('api-key').value = '';
  showApp(true);
}

function signOut() {
  session.clear();
  window.location.reload();
}

async function start() {
  $('signin-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  $('list-h').tabIndex = -1;
  document.addEventListener('dnc:unauthorized', () => {
    if (!session.me) return;
    session.clear();
    window.location.reload();
  });
  if (!session.key) {
    showSignIn();
    return;
  }
  try {
    if (await whoAmI(session.key)) showApp();
    else {
      session.clear();
      showSignIn('Your key is no longer accepted: sign in again.');
    }
  } catch (err) {
    showSignIn();
    alertError(`The service cannot be reached: ${err.message}`);
  }
}

start();
