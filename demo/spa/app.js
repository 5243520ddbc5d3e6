// The demo SPA. Everything goes to the gateway on this origin with the session cookie
// (credentials: 'include') and X-CSRF: 1. It never receives or stores a token.

const $ = (id) => document.getElementById(id);
const api = (path, init = {}) =>
  fetch(path, { credentials: 'include', ...init, headers: { 'X-CSRF': '1', ...(init.headers || {}) } });

async function problemText(res) {
  try {
    const body = await res.json();
    return `${res.status} ${body.code || ''}: ${body.detail || body.title || ''}`;
  } catch {
    return `${res.status}`;
  }
}

async function showSession() {
  const res = await fetch('/auth/session', { credentials: 'include' });
  const status = $('status');
  if (res.status !== 200) {
    status.textContent = 'Not logged in';
    status.dataset.state = 'logged-out';
    $('logged-out').hidden = false;
    $('logged-in').hidden = true;
    return;
  }
  const s = await res.json();
  status.textContent = `Logged in as ${s.user.pid ?? s.user.sub}`;
  status.dataset.state = 'logged-in';
  $('user-sub').textContent = s.user.sub;
  $('user-pid').textContent = s.user.pid ?? '';
  $('user-acr').textContent = s.user.acr;
  $('user-amr').textContent = (s.user.amr || []).join(', ');
  $('session-ends').textContent = s.session.endsAt;
  $('token-expires').textContent = s.accessToken.expiresAt;
  $('logged-in').hidden = false;
  $('logged-out').hidden = true;
}

async function validate(kind) {
  const out = $(`result-${kind}`);
  const status = $(`result-${kind}-status`);
  status.textContent = 'Validating…';
  delete status.dataset.ok;
  const xml = await (await fetch(`/demo/samples/${kind}.xml`)).text();
  const res = await api('/mva/validering', { method: 'POST', headers: { 'Content-Type': 'application/xml' }, body: xml });
  if (res.status !== 200) {
    status.textContent = `Failed: ${await problemText(res)}`;
    status.dataset.ok = 'false';
    out.textContent = '';
    return;
  }
  const text = await res.text();
  const result = /<status>([^<]+)<\/status>/.exec(text)?.[1] ?? 'unknown';
  status.textContent = `Result: ${result}`;
  status.dataset.ok = 'true';
  status.dataset.result = result;
  out.textContent = text;
}

async function submit() {
  const steps = $('submission-steps');
  const result = $('submission-result');
  steps.replaceChildren();
  result.textContent = 'Submitting…';
  delete result.dataset.ok;
  const step = (text) => {
    const li = document.createElement('li');
    li.textContent = text;
    steps.append(li);
  };
  const call = async (label, path, init) => {
    const res = await api(`/mva/innsending${path}`, init);
    if (!res.ok) throw new Error(`${label}: ${await problemText(res)}`);
    step(`${label}: ${res.status}`);
    return res.json();
  };
  try {
    const instance = await call('Create instance', '/instances', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    const base = `/instances/${instance.id}`;
    const xml = await (await fetch('/demo/samples/valid.xml')).text();
    await call('Upload mva-melding', `${base}/data?dataType=mvamelding`, { method: 'POST', headers: { 'Content-Type': 'application/xml' }, body: xml });
    await call('Process next (to confirm)', `${base}/process/next`, { method: 'PUT' });
    await call('Process next (to feedback)', `${base}/process/next`, { method: 'PUT' });
    const feedback = await call('Feedback status', `${base}/feedback/status`, { method: 'GET' });
    result.textContent = `Submitted: ${feedback.status}`;
    result.dataset.ok = 'true';
    result.dataset.result = feedback.status;
  } catch (err) {
    result.textContent = `Failed: ${err.message}`;
    result.dataset.ok = 'false';
  }
}

$('login').addEventListener('click', () => {
  const acr = $('acr-high').checked ? '&acr=idporten-loa-high' : '';
  location.assign(`/auth/login?returnTo=${encodeURIComponent('/')}${acr}`);
});
$('refresh').addEventListener('click', async () => {
  const res = await api('/auth/session/refresh', { method: 'POST' });
  if (res.ok) await showSession();
});
$('validate-valid').addEventListener('click', () => validate('valid'));
$('validate-invalid').addEventListener('click', () => validate('invalid'));
$('submit').addEventListener('click', submit);

if (new URLSearchParams(location.search).get('login_error') === 'cancelled') {
  $('login-error').textContent = 'The login was cancelled.';
  $('login-error').hidden = false;
}
showSession();
