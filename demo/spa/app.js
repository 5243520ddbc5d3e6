// The demo SPA. It holds no token: every call goes to the gateway on this origin through api(), which is
// the gateway's browser helper (/auth/client.js): the session cookie (credentials: 'same-origin'), X-CSRF: 1,
// and a 401 login_required / session_expired sends the user to the login and back to this page.
import { bff } from '/auth/client.js';

const $ = (id) => document.getElementById(id);

/** The one way this app talks to the server: same-origin paths only, through bff.fetch. */
function api(path, init = {}) {
  if (!path.startsWith('/') || path.startsWith('//')) throw new Error(`not a same-origin path: ${path}`);
  const response = bff.fetch(path, init);
  // A call the gateway saw moves the session's idle deadline: read it again (once, after a burst of calls).
  void response.then(() => sessionChanged(), () => undefined);
  return response;
}

// Skatteetaten's limits for binaerVedlegg (mva-meldingen API page, "Last Opp Vedlegg").
const MAX_ATTACHMENTS = 57;
const MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024;
const ATTACHMENT_TYPES = {
  'text/xml': 'XML',
  'application/pdf': 'PDF',
  'application/vnd.oasis.opendocument.formula': 'ODF',
  'application/vnd.oasis.opendocument.text': 'ODT',
  'application/vnd.oasis.opendocument.spreadsheet': 'ODS',
  'application/vnd.oasis.opendocument.presentation': 'ODP',
  'application/vnd.oasis.opendocument.graphics': 'ODG',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'DOCX',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'XLSX',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': 'PPTX',
  'application/msword': 'DOC',
  'application/vnd.ms-excel': 'XLS',
  'application/vnd.ms-powerpoint': 'PPT',
  'image/jpeg': 'JPEG',
  'image/png': 'PNG',
};
const ENVELOPE_TYPE = 'no.skatteetaten.fastsetting.avgift.mva.mvameldinginnsending.v1.0';
const MELDING_FILENAME = 'mvaMelding.xml';

async function problemText(res) {
  const text = await res.text();
  try {
    const body = JSON.parse(text);
    if (typeof body === 'string') return `${res.status}: ${body}`;
    return `${res.status} ${body.code || body.error || ''}: ${body.detail || body.title || body.error_description || ''}`;
  } catch {
    return `${res.status}${text && !text.startsWith('<') ? `: ${text.slice(0, 300)}` : ''}`;
  }
}

const mib = (bytes) => `${(bytes / 1024 / 1024).toFixed(bytes < 1024 * 1024 ? 2 : 1)} MB`;

// --- XML helpers (DOMParser: no markup is ever inserted into the page) ---

function parseXml(text) {
  const doc = new DOMParser().parseFromString(text, 'application/xml');
  if (doc.getElementsByTagName('parsererror').length) throw new Error('the answer is not well-formed XML');
  return doc;
}

/** Elements by local name, whatever the namespace. */
const all = (node, name) => [...node.getElementsByTagNameNS('*', name)];
const text = (node, name) => all(node, name)[0]?.textContent.trim() ?? '';

/**
 * A valideringsresultat in either published shape: the XSD's (avvikVedMeldingslevering, avvik) or
 * the API page's example (status, valideringsfeil). Only "ugyldig skattemelding" blocks a submission.
 */
function readValideringsresultat(xmlText) {
  const doc = parseXml(xmlText);
  const root = doc.documentElement;
  if (all(root, 'avvikVedMeldingslevering').length || all(root, 'avvik').length) {
    const status = text(root, 'avvikVedMeldingslevering');
    const avvik = all(root, 'avvik').flatMap((a) => all(a, 'avviksinformasjon').map((i) => ({
      sti: text(a, 'stiTilAvvik'),
      mvaKode: text(a, 'mvaKode'),
      regel: text(i, 'regelDefinisjon'),
      kode: text(i, 'avvikKode'),
      type: text(i, 'avvikstype'),
      begrunnelse: text(i, 'begrunnelse'),
      detaljer: text(i, 'detaljer'),
    })));
    return { status, submittable: status !== 'ugyldig skattemelding', avvik };
  }
  const status = text(root, 'status');
  const avvik = all(root, 'valideringsfeil').map((f) => ({
    sti: text(f, 'stiTilFeil'),
    mvaKode: '',
    regel: '',
    kode: text(f, 'avvikKode'),
    type: text(f, 'alvorlighetsgrad'),
    begrunnelse: text(f, 'feilmelding'),
    detaljer: text(f, 'informasjon'),
  }));
  return { status, submittable: status !== 'UGYLDIG_SKATTEMELDING', avvik };
}

function showAvvik(table, avvik) {
  table.replaceChildren();
  table.hidden = avvik.length === 0;
  if (!avvik.length) return;
  const head = table.createTHead().insertRow();
  for (const label of ['path', 'rule', 'code', 'severity', 'reason']) {
    const th = document.createElement('th');
    th.textContent = label;
    head.append(th);
  }
  const body = table.createTBody();
  for (const a of avvik) {
    const row = body.insertRow();
    row.className = 'avvik-row';
    row.dataset.type = a.type;
    const cells = [
      [a.sti, 'sti'],
      [a.regel, 'regel'],
      [a.kode, 'kode'],
      [a.type, 'type'],
      [[a.begrunnelse, a.detaljer, a.mvaKode && `mva-kode ${a.mvaKode}`].filter(Boolean).join(' — '), 'begrunnelse'],
    ];
    for (const [value, name] of cells) {
      const cell = row.insertCell();
      cell.className = name;
      cell.textContent = value;
    }
  }
}

// --- Session ---

/** Warn this many seconds before the session ends (the earlier of its idle and absolute deadlines). */
const EXPIRY_WARNING_SECONDS = 5 * 60;

/** When the session ends, in performance.now() time (the browser's clock may be wrong; the gateway's is not). */
let countdown = { deadline: undefined, reason: '' };
let countdownTimer;
let sessionReload;
let loggedIn = false;

/** 29:59 or 7:59:59 */
function formatLeft(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const two = (n) => String(n).padStart(2, '0');
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}:${two(m)}:${two(s % 60)}` : `${m}:${two(s % 60)}`;
}

function renderCountdown() {
  const out = $('session-countdown');
  if (countdown.deadline === undefined) {
    out.textContent = '';
    delete out.dataset.seconds;
    return;
  }
  const left = Math.max(0, Math.round((countdown.deadline - performance.now()) / 1000));
  out.textContent = formatLeft(left);
  out.dataset.seconds = String(left);
  out.dataset.reason = countdown.reason;
  $('session-countdown-reason').textContent = countdown.reason === 'idle' ? '(when idle)' : '(session lifetime)';
  if (left === 0) {
    clearInterval(countdownTimer);
    countdownTimer = undefined;
    void showSession();
  }
}

function startCountdown(view, sentAt) {
  const { endsIn, idleExpiresIn } = view.session;
  // Counted from when the request left: the countdown is a little early, never late.
  countdown = { deadline: sentAt + Math.min(endsIn, idleExpiresIn) * 1000, reason: idleExpiresIn < endsIn ? 'idle' : 'absolute' };
  renderCountdown();
  if (!countdownTimer) countdownTimer = setInterval(renderCountdown, 1000);
}

function stopCountdown() {
  clearInterval(countdownTimer);
  countdownTimer = undefined;
  countdown = { deadline: undefined, reason: '' };
  renderCountdown();
}

/** After activity, read the session view again (debounced); never on a timer, which would keep an idle session alive. */
function sessionChanged() {
  if (!loggedIn) return;
  clearTimeout(sessionReload);
  sessionReload = setTimeout(() => void showSession(), 1000);
}

function showLoggedOut(text = 'Not logged in') {
  loggedIn = false;
  const status = $('status');
  status.textContent = text;
  status.dataset.state = 'logged-out';
  $('logged-out').hidden = false;
  $('logged-in').hidden = true;
  $('sessions-section').hidden = true;
  $('expiry-banner').hidden = true;
  stopCountdown();
}

function showView(s, sentAt) {
  const status = $('status');
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
  $('sessions-section').hidden = false;
  startCountdown(s, sentAt);
  const wasLoggedIn = loggedIn;
  loggedIn = true;
  return wasLoggedIn;
}

async function showSession() {
  const sentAt = performance.now();
  const s = await bff.session().catch(() => null);
  if (!s) {
    showLoggedOut(loggedIn ? 'Your session has ended' : 'Not logged in');
    return;
  }
  if (!showView(s, sentAt)) {
    watchExpiry();
    void showSessions();
  }
}

let unwatchExpiry;

/** The "expiring soon" banner: bff.onExpiring fires once per deadline, and again after the session is extended. */
function watchExpiry() {
  unwatchExpiry?.();
  unwatchExpiry = bff.onExpiring(EXPIRY_WARNING_SECONDS, (info) => {
    const banner = $('expiry-banner');
    banner.dataset.reason = info.reason;
    if (info.reason === 'ended') {
      $('expiry-message').textContent = 'Your session has ended.';
      $('stay-logged-in').hidden = true;
      banner.hidden = false;
      showLoggedOut('Your session has ended');
      return;
    }
    $('expiry-message').textContent = info.reason === 'idle'
      ? `You will be logged out in about ${Math.ceil(info.secondsLeft / 60)} min unless you stay active.`
      : `Your session reaches its maximum lifetime in about ${Math.ceil(info.secondsLeft / 60)} min; then you must log in again.`;
    $('stay-logged-in').hidden = info.reason !== 'idle';
    banner.hidden = false;
  });
}

async function stayLoggedIn() {
  const sentAt = performance.now();
  const s = await bff.refresh().catch(() => null);
  if (!s) {
    showLoggedOut('Your session has ended');
    return;
  }
  $('expiry-banner').hidden = true;
  showView(s, sentAt);
}

// --- Your sessions ---

const when = (iso) => new Date(iso).toLocaleString('nb-NO', { dateStyle: 'short', timeStyle: 'medium' });

async function showSessions() {
  const list = $('sessions');
  const status = $('sessions-status');
  const res = await api('/auth/sessions');
  if (!res.ok) {
    status.textContent = `Could not list the sessions: ${await problemText(res)}`;
    status.dataset.ok = 'false';
    return;
  }
  const sessions = await res.json();
  status.textContent = `${sessions.length} session${sessions.length === 1 ? '' : 's'}`;
  status.dataset.ok = 'true';
  status.dataset.count = String(sessions.length);
  list.replaceChildren();
  for (const s of sessions) {
    const li = document.createElement('li');
    li.className = 'session';
    li.dataset.current = String(s.current);
    const agent = document.createElement('strong');
    agent.className = 'user-agent';
    agent.textContent = s.userAgent || 'unknown browser';
    const times = document.createElement('span');
    times.className = 'times';
    times.textContent = ` — logged in ${when(s.createdAt)}, last seen ${when(s.lastSeenAt)}`;
    li.append(agent, times);
    if (s.current) {
      const mine = document.createElement('span');
      mine.className = 'this-browser';
      mine.textContent = 'this browser';
      li.append(mine);
    } else {
      const end = document.createElement('button');
      end.type = 'button';
      end.className = 'end-session';
      end.textContent = 'End';
      end.addEventListener('click', () => endSession(s.handle));
      li.append(' ', end);
    }
    list.append(li);
  }
}

async function endSession(handle) {
  const res = await api(`/auth/sessions/${encodeURIComponent(handle)}`, { method: 'DELETE' });
  if (res.status !== 204 && res.status !== 404) {
    $('sessions-status').textContent = `Could not end the session: ${await problemText(res)}`;
    $('sessions-status').dataset.ok = 'false';
    return;
  }
  await showSessions();
}

async function endAll() {
  const res = await api('/auth/logout/all', { method: 'POST' });
  if (!res.ok) {
    $('sessions-status').textContent = `Could not log out everywhere: ${await problemText(res)}`;
    $('sessions-status').dataset.ok = 'false';
    return;
  }
  const { ended } = await res.json();
  showLoggedOut(`Logged out everywhere (${ended} session${ended === 1 ? '' : 's'} ended)`);
}

// --- Validation ---

async function sample(kind) {
  const res = await api(`/samples/${kind}.xml`);
  if (!res.ok) throw new Error(`sample ${kind}: ${res.status}`);
  return res.text();
}

/** POST /mva/validering; an invalid return is still a 200 with a valideringsresultat. */
async function validateXml(xml) {
  const res = await api('/mva/validering', { method: 'POST', headers: { 'Content-Type': 'application/xml', Accept: 'application/xml' }, body: xml });
  if (res.status !== 200) throw new Error(`validation: ${await problemText(res)}`);
  const raw = await res.text();
  return { raw, ...readValideringsresultat(raw) };
}

async function validate(kind) {
  const out = $(`result-${kind}`);
  const status = $(`result-${kind}-status`);
  status.textContent = 'Validating…';
  delete status.dataset.ok;
  delete status.dataset.result;
  try {
    const result = await validateXml(await sample(kind));
    status.textContent = `Result: ${result.status}${result.avvik.length ? ` (${result.avvik.length} avvik)` : ''}${result.submittable ? '' : ' — cannot be submitted'}`;
    status.dataset.ok = 'true';
    status.dataset.result = result.status;
    status.dataset.submittable = String(result.submittable);
    showAvvik($(`result-${kind}-avvik`), result.avvik);
    out.textContent = result.raw;
  } catch (err) {
    status.textContent = `Failed: ${err.message}`;
    status.dataset.ok = 'false';
    out.textContent = '';
  }
}

// --- Attachments ---

/** The chosen files, or a reason they cannot be sent (checked here, and again by Altinn). */
function chosenAttachments() {
  const files = [...$('attachments').files];
  const names = new Set([MELDING_FILENAME.toLowerCase()]);
  if (files.length > MAX_ATTACHMENTS) return { error: `At most ${MAX_ATTACHMENTS} attachments (${files.length} chosen).` };
  for (const file of files) {
    if (file.size > MAX_ATTACHMENT_BYTES) return { error: `${file.name} is ${mib(file.size)}; the limit is 25 MB per file.` };
    if (!ATTACHMENT_TYPES[file.type]) return { error: `${file.name} (${file.type || 'unknown type'}) is not an allowed file type.` };
    if (names.has(file.name.toLowerCase())) return { error: `Two files are named ${file.name}; file names must be unique.` };
    names.add(file.name.toLowerCase());
  }
  return { files };
}

function showAttachments() {
  const list = $('attachment-list');
  list.replaceChildren();
  for (const file of $('attachments').files) {
    const li = document.createElement('li');
    li.textContent = `${file.name} — ${mib(file.size)}, ${file.type || 'unknown type'}`;
    list.append(li);
  }
  const { error } = chosenAttachments();
  $('attachment-error').hidden = !error;
  $('attachment-error').textContent = error ?? '';
  $('submit').disabled = Boolean(error);
}

// --- Submission ---

const xmlEscape = (s) => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** mvaMeldingInnsending ("konvolutt") per no.skatteetaten.fastsetting.avgift.mva.mvameldinginnsending.v1.0.xsd. */
function konvolutt(melding, files, opprettetAv) {
  const vedlegg = [
    ...files.map((f) => ['binaerVedlegg', 'sluttbruker', f.name]),
    ['mva-melding', 'sluttbrukersystem', MELDING_FILENAME],
  ].map(([type, kilde, name]) => {
    const dot = name.lastIndexOf('.');
    return `  <vedlegg>
    <vedleggstype>${type}</vedleggstype>
    <kildegruppe>${kilde}</kildegruppe>
    <opprettetAv>${xmlEscape(opprettetAv)}</opprettetAv>
    <vedleggsfil>
      <filnavn>${xmlEscape(dot > 0 ? name.slice(0, dot) : name)}</filnavn>
      <filekstensjon>${xmlEscape(dot > 0 ? name.slice(dot + 1) : '')}</filekstensjon>
      <filinnhold>${xmlEscape(name)}</filinnhold>
    </vedleggsfil>
  </vedlegg>
`;
  }).join('');
  return `<?xml version="1.0" encoding="UTF-8"?>
<mvaMeldingInnsending xmlns="no:skatteetaten:fastsetting:avgift:mva:mvameldinginnsending:v1.0">
  <norskIdentifikator>
    <organisasjonsnummer>${xmlEscape(melding.orgnr)}</organisasjonsnummer>
  </norskIdentifikator>
  <skattleggingsperiode>
    <periode>
      <${melding.periodeType}>${xmlEscape(melding.periode)}</${melding.periodeType}>
    </periode>
    <aar>${xmlEscape(melding.aar)}</aar>
  </skattleggingsperiode>
  <meldingskategori>${xmlEscape(melding.meldingskategori)}</meldingskategori>
  <innsendingstype>komplett</innsendingstype>
  <opprettetAv>${xmlEscape(opprettetAv)}</opprettetAv>
${vedlegg}</mvaMeldingInnsending>
`;
}

function readMelding(xml) {
  const doc = parseXml(xml);
  const periode = all(doc, 'skattleggingsperiode')[0];
  const periodeValue = periode ? all(periode, 'periode')[0]?.firstElementChild : undefined;
  return {
    orgnr: text(all(doc, 'skattepliktig')[0] ?? doc, 'organisasjonsnummer'),
    meldingskategori: text(doc, 'meldingskategori'),
    periodeType: periodeValue?.localName ?? 'skattleggingsperiodeToMaaneder',
    periode: periodeValue?.textContent.trim() ?? '',
    aar: periode ? text(periode, 'aar') : '',
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
let receiptUrl;

async function submit() {
  const steps = $('submission-steps');
  const result = $('submission-result');
  steps.replaceChildren();
  $('submission-avvik').hidden = true;
  $('feedback').hidden = true;
  result.textContent = 'Submitting…';
  delete result.dataset.ok;
  delete result.dataset.result;
  const step = (label) => {
    const li = document.createElement('li');
    li.textContent = label;
    steps.append(li);
  };
  /** One call to the submission app through the gateway; 409 answers are shown, not thrown away. */
  const altinn = async (label, path, init = {}, read = 'json') => {
    const res = await api(`/mva/innsending${path}`, init);
    if (res.status === 409 && (res.headers.get('content-type') || '').includes('xml')) {
      const found = readValideringsresultat(await res.text());
      showAvvik($('submission-avvik'), found.avvik);
      throw new Error(`${label}: 409, the return is invalid (${found.status})`);
    }
    if (!res.ok) throw new Error(`${label}: ${await problemText(res)}`);
    step(`${label}: ${res.status}`);
    return read === 'blob' ? res.blob() : read === 'text' ? res.text() : res.json();
  };

  try {
    const chosen = chosenAttachments();
    if (chosen.error) throw new Error(chosen.error);
    const files = chosen.files;
    const xml = await sample($('sample').value);
    const melding = readMelding(xml);

    // 1. Validate first, as Skatteetaten asks; stop on "ugyldig skattemelding".
    const validation = await validateXml(xml);
    step(`Validate: ${validation.status}`);
    showAvvik($('submission-avvik'), validation.avvik);
    if (!validation.submittable) throw new Error(`the return is invalid (${validation.status}); not submitted`);

    // 2. Instance, envelope, return, attachments.
    const instance = await altinn('Create instance', '/instances', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ instanceOwner: { organisationNumber: melding.orgnr } }),
    });
    const base = `/instances/${instance.id}`;
    const envelope = instance.data.find((d) => d.dataType === ENVELOPE_TYPE);
    if (!envelope) throw new Error('the instance has no envelope element');
    await altinn('Upload envelope (konvolutt)', `${base}/data/${envelope.id}`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/xml' },
      body: konvolutt(melding, files, 'idporten-bff demo'),
    });
    await altinn('Upload mva-melding', `${base}/data?dataType=mvamelding`, {
      method: 'POST',
      headers: { 'Content-Type': 'text/xml', 'Content-Disposition': `attachment; filename=${MELDING_FILENAME}` },
      body: xml,
    });
    for (const file of files) {
      await altinn(`Upload attachment ${file.name} (${mib(file.size)})`, `${base}/data?dataType=binaerVedlegg`, {
        method: 'POST',
        headers: { 'Content-Type': file.type, 'Content-Disposition': `attachment; filename*=UTF-8''${encodeURIComponent(file.name)}` },
        body: file,
      });
    }

    // 3. Complete the data task (Altinn validates again: 409 on problems) and submit.
    await altinn('Complete (process/next)', `${base}/process/next`, { method: 'PUT' });
    await altinn('Submit (process/next)', `${base}/process/next`, { method: 'PUT' });

    // 4. Poll feedback/status, then fetch the instance with Skatteetaten's feedback files.
    let provided = false;
    for (let i = 0; i < 120 && !provided; i += 1) {
      if (i) await sleep(250);
      const res = await api(`/mva/innsending${base}/feedback/status`);
      if (!res.ok) throw new Error(`feedback/status: ${await problemText(res)}`);
      provided = (await res.json()).isFeedbackProvided === true;
    }
    if (!provided) throw new Error('Skatteetaten has not given feedback yet; try again later');
    step('Feedback status: provided');
    const done = await altinn('Fetch feedback', `${base}/feedback`);
    const file = (type) => done.data.find((d) => d.dataType === type);

    const betaling = file('betalingsinformasjon');
    if (betaling) {
      const doc = parseXml(await altinn('Payment information', `${base}/data/${betaling.id}`, {}, 'text'));
      $('payment-amount').textContent = `${text(doc, 'beloep')} kr`;
      $('payment-kid').textContent = text(doc, 'kundeidentifikasjonsnummer');
      $('payment-account').textContent = text(doc, 'norskKontonummer');
      $('payment-due').textContent = text(doc, 'betalingsfrist');
      $('payment-to').textContent = text(doc, 'betaleTil');
      $('payment-reference').textContent = text(doc, 'innsendingsreferanse');
    }
    const kvittering = file('kvittering');
    if (kvittering) {
      const pdf = await altinn('Receipt', `${base}/data/${kvittering.id}`, {}, 'blob');
      if (receiptUrl) URL.revokeObjectURL(receiptUrl);
      receiptUrl = URL.createObjectURL(new Blob([pdf], { type: 'application/pdf' }));
      const link = $('receipt-link');
      link.href = receiptUrl;
      link.download = kvittering.filename || 'kvittering.pdf';
      link.dataset.size = String(pdf.size);
    }
    $('feedback').hidden = false;
    const label = done.status?.substatus?.label ?? (done.process?.ended ? 'ended' : 'pending');
    result.textContent = `Submitted: ${label}`;
    result.dataset.ok = 'true';
    result.dataset.result = label;
  } catch (err) {
    result.textContent = `Failed: ${err.message}`;
    result.dataset.ok = 'false';
  }
}

$('login').addEventListener('click', () => {
  const acr = $('acr-high').checked ? '&acr=idporten-loa-high' : '';
  location.assign(`/auth/login?returnTo=${encodeURIComponent('/')}${acr}`);
});
$('refresh').addEventListener('click', stayLoggedIn);
$('stay-logged-in').addEventListener('click', stayLoggedIn);
$('logout').addEventListener('click', () => bff.logout());
$('reload-sessions').addEventListener('click', showSessions);
$('end-all').addEventListener('click', endAll);
for (const kind of ['valid', 'deviating', 'invalid']) $(`validate-${kind}`).addEventListener('click', () => validate(kind));
$('attachments').accept = Object.keys(ATTACHMENT_TYPES).join(',');
$('attachments').addEventListener('change', showAttachments);
$('attachment-limits').textContent = `0–${MAX_ATTACHMENTS} files, at most ${MAX_ATTACHMENT_BYTES / 1024 / 1024} MB each, unique names; `
  + `types: ${[...new Set(Object.values(ATTACHMENT_TYPES))].join(', ')}.`;
$('submit').addEventListener('click', submit);

if (new URLSearchParams(location.search).get('login_error') === 'cancelled') {
  $('login-error').textContent = 'The login was cancelled.';
  $('login-error').hidden = false;
}
showSession();
