// sessiond.js: the calls a page makes to sessiond, as one ES module.
// Same-origin fetch with JSON (so sessiond's Origin check protects every
// state-changing call), errors as ApiError, and a chat socket that
// reconnects unless its session ended. Served by sessiond at /sessiond.js.

/** An error answer: the HTTP status, the contract's code and message. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    /** Seconds to wait (429), else null. */
    this.retryAfter = retryAfter;
  }
}

const ended = new Set();

/** Calls `handler(reason)` when the session ends: a 401 from a call that
 * needed it, or the chat socket closed with 4401. */
export function onSessionEnded(handler) {
  ended.add(handler);
  return () => ended.delete(handler);
}

function sessionEnded(reason) {
  for (const handler of ended) handler(reason);
}

const enrol = new Set();

/** Calls `handler()` when a call is refused until the user enrols a second
 * factor (`auth.require_mfa`): `factors()` and the enrolment still work. */
export function onEnrolmentRequired(handler) {
  enrol.add(handler);
  return () => enrol.delete(handler);
}

function enrolmentRequired() {
  for (const handler of enrol) handler();
}

async function call(method, path, body, { needsSession = true } = {}) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 204) return null;
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (res.ok) return data;
  const err = data && data.error ? data.error : { code: "error", message: res.statusText };
  const retry = res.headers.get("Retry-After");
  // A wrong password or code (a reauth, a password change) is an answer;
  // any other 401 means the session is gone.
  const wrongProof = err.code === "invalid_credentials" || err.code === "mfa_failed";
  if (res.status === 401 && needsSession && !wrongProof) sessionEnded("Your session has ended. Sign in again.");
  if (res.status === 403 && err.code === "mfa_enrolment_required") enrolmentRequired();
  throw new ApiError(res.status, err.code, err.message, retry ? Number(retry) : null);
}

const open = { needsSession: false };

/** Signs in by user name or e-mail; `remember: false` ends the cookie with the browser.
 * Resolves to `{user}` (signed in), or to `{mfa: {pending, methods, expiresIn}}`
 * for a user with a second factor: then `secondStep(mfa.pending, code)`. */
export function signIn(login, password, remember = true) {
  const who = login.includes("@") ? { email: login } : { username: login };
  return call("POST", "/api/auth/login", { ...who, password, remember }, open);
}
/** Signs in with a Firebase or OIDC ID token; resolves as `signIn` does. */
export const signInWithIdToken = (idToken, remember = true) =>
  call("POST", "/api/auth/idtoken", { idToken, remember }, open);
/** The second step of a sign-in: `method` "totp" (a 6-digit code) or
 * "recovery" (a recovery code, used up). `{user}`; a wrong code is an
 * ApiError 401 `mfa_failed`, and `pending` stays good for another try. */
export const secondStep = (pending, code, method = "totp") =>
  call("POST", `/api/auth/mfa/${method === "recovery" ? "recovery" : "totp"}`, { pending, code }, open);
/** Asks for a recovery code by mail: resolves the same whether or not the
 * account exists (an ApiError 501 `mail_not_configured` on a server with no mail). */
export const requestRecovery = (login) => call("POST", "/api/auth/recovery", { login }, open);
/** Sets a new password with the mailed code (`{login, code}`) or a reset
 * link's token (`{token}`); resolves as `signIn` does. */
export const recover = (proof, newPassword) =>
  call("POST", "/api/auth/recovery/verify", { ...proof, newPassword }, open);
/** Proves the e-mail address with the mailed code: `{user}`. Signed in, or,
 * when sign-in is refused until it is verified, with the `login`. */
export const verifyEmail = (code, login) =>
  call("POST", "/api/auth/email/verify", login ? { code, login } : { code }, open);
/** Mails a new verification code: to the signed-in user, or to whoever `login` names. */
export const resendVerification = (login) =>
  call("POST", "/api/auth/email/resend", login ? { login } : {}, open);
/** Starts moving the signed-in account to `email` (the password proves it
 * is the user): a code goes to the new address, and the account keeps its
 * address until `verifyEmail` gets that code. */
export const changeEmail = (email, password) =>
  call("POST", "/api/auth/email", password ? { email, password } : { email }, open);
export const register = (username, email, password) =>
  call("POST", "/api/auth/register", { username, email, password }, open);
export const signOut = () => call("POST", "/api/auth/logout", undefined, open);
/** `{user, session}`, or an ApiError 401 when signed out. */
export const me = () => call("GET", "/api/auth/me", undefined, open);
export const sessions = async () => (await call("GET", "/api/auth/sessions")).sessions;
export const revokeSession = (id) => call("DELETE", `/api/auth/sessions/${encodeURIComponent(id)}`);
export const revokeOtherSessions = () => call("DELETE", "/api/auth/sessions");
/** One page of the caller's security log, newest first: `{entries, next}`. */
export const activity = (before) =>
  call("GET", `/api/auth/activity?limit=20${before ? `&before=${encodeURIComponent(before)}` : ""}`);
/** `currentPassword` may be omitted by a user who has none yet. */
export const changePassword = (currentPassword, newPassword) =>
  call("POST", "/api/auth/password", currentPassword ? { currentPassword, newPassword } : { newPassword });
/** `{factors: [{id, kind, name, createdAt, lastUsedAt}], recoveryCodesLeft, required}`. */
export const factors = () => call("GET", "/api/auth/mfa");
// Changing factors may be an ApiError 403 `reauth_required`: `reauth(password)`, then again.
/** `{secret, otpauthUri, qrSvg}`: show them, then `confirmTotp(code)`. */
export const enrolTotp = () => call("POST", "/api/auth/mfa/totp/enrol");
/** `{factor}`; a wrong code is an ApiError 400 `invalid_code`. */
export const confirmTotp = (code) => call("POST", "/api/auth/mfa/totp/confirm", { code });
/** Ten new recovery codes, shown once; the old ones are void. */
export const newRecoveryCodes = async () => (await call("POST", "/api/auth/mfa/recovery")).codes;
export const removeFactor = (id) => call("DELETE", `/api/auth/mfa/${encodeURIComponent(id)}`);
/** A fresh proof for changing factors; a wrong password is an ApiError 401 `invalid_credentials`. */
export const reauth = (password) => call("POST", "/api/auth/reauth", { password });

// WebAuthn: the server's options carry binary fields as base64url; the
// browser wants ArrayBuffers, and answers with ArrayBuffers.
const fromB64 = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)).buffer;
const toB64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)))
  .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const dropNulls = (o) => JSON.parse(JSON.stringify(o, (_, v) => (v === null ? undefined : v)));
const withIds = (list) => list && list.map((c) => ({ ...c, id: fromB64(c.id) }));

function credentialJson(cred) {
  const r = cred.response;
  const response = { clientDataJSON: toB64(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toB64(r.attestationObject);
    if (r.getTransports) response.transports = r.getTransports();
  } else {
    response.authenticatorData = toB64(r.authenticatorData);
    response.signature = toB64(r.signature);
    if (r.userHandle) response.userHandle = toB64(r.userHandle);
  }
  return { id: cred.id, rawId: toB64(cred.rawId), type: cred.type, response,
    clientExtensionResults: cred.getClientExtensionResults() };
}

async function create(options) {
  const pk = dropNulls(options.publicKey);
  pk.challenge = fromB64(pk.challenge);
  pk.user.id = fromB64(pk.user.id);
  pk.excludeCredentials = withIds(pk.excludeCredentials);
  return credentialJson(await navigator.credentials.create({ publicKey: pk }));
}

async function get(options, mediation) {
  const pk = dropNulls(options.publicKey);
  pk.challenge = fromB64(pk.challenge);
  pk.allowCredentials = withIds(pk.allowCredentials);
  return credentialJson(await navigator.credentials.get(mediation ? { publicKey: pk, mediation } : { publicKey: pk }));
}

/** Whether this browser can use passkeys at all. */
export const webauthnSupported = () => typeof window.PublicKeyCredential === "function";
/** Registers a passkey or security key for the signed-in user: `{factor}`.
 * Needs a fresh proof like the other changes; a cancelled prompt throws the
 * browser's DOMException (`NotAllowedError`). */
export async function addKey(name) {
  const options = await call("POST", "/api/auth/mfa/webauthn/register/start", { name });
  return call("POST", "/api/auth/mfa/webauthn/register/finish", { credential: await create(options) });
}
/** The second step with a key: `{user}`, as `secondStep`. */
export async function keyStep(pending) {
  const options = await call("POST", "/api/auth/mfa/webauthn/start", { pending }, open);
  return call("POST", "/api/auth/mfa/webauthn/finish", { pending, credential: await get(options) }, open);
}
/** Offers this site's passkeys in the username field's autofill
 * (WebAuthn conditional mediation) where the browser can: resolves to
 * `{user}` once the person picks one, to null where the browser cannot,
 * and rejects with an AbortError when `signal` aborts (before a modal
 * prompt, or on leaving the page). Give the field
 * `autocomplete="username webauthn"`. */
export async function passkeyAutofill(signal, remember = true) {
  const can = window.PublicKeyCredential && PublicKeyCredential.isConditionalMediationAvailable
    && await PublicKeyCredential.isConditionalMediationAvailable();
  if (!can || signal.aborted) return null;
  const options = await call("POST", "/api/auth/passkey/start", undefined, open);
  const pk = dropNulls(options.publicKey);
  pk.challenge = fromB64(pk.challenge);
  pk.allowCredentials = [];
  const cred = await navigator.credentials.get({ publicKey: pk, mediation: "conditional", signal });
  return call("POST", "/api/auth/passkey/finish", { credential: credentialJson(cred), remember }, open);
}
/** Signs in with a passkey alone (no name, no password): `{user}`. A
 * passkey that is not this site's, or one the browser could not verify
 * the user for, is an ApiError 401 `invalid_credentials`. */
export async function passkeySignIn(remember = true) {
  const options = await call("POST", "/api/auth/passkey/start", undefined, open);
  return call("POST", "/api/auth/passkey/finish", { credential: await get(options), remember }, open);
}
/** Apps signed in through sessiond (OpenID Connect) with consent or live tokens. */
export const apps = async () => (await call("GET", "/api/auth/apps")).apps;
export const revokeApp = (clientId) => call("DELETE", `/api/auth/apps/${encodeURIComponent(clientId)}`);
/** An app's waiting sign-in request: `{clientId, name, scopes}`. */
export const consentRequest = (id) => call("GET", `/api/oidc/consent?request=${encodeURIComponent(id)}`);
/** The answer to it: `{redirect}`, where the browser goes next. */
export const consent = (request, approve) => call("POST", "/api/oidc/consent", { request, approve });
export const identities = async () => (await call("GET", "/api/auth/identities")).identities;
export const users = (after) =>
  call("GET", `/api/admin/users?limit=50${after ? `&after=${encodeURIComponent(after)}` : ""}`);
export const setRole = (id, role) => call("PATCH", `/api/admin/users/${encodeURIComponent(id)}`, { role });
export const removeUser = (id) => call("DELETE", `/api/admin/users/${encodeURIComponent(id)}`);
export const revokeUserSessions = (id) => call("DELETE", `/api/admin/users/${encodeURIComponent(id)}/sessions`);
export const stats = () => call("GET", "/api/admin/stats");
/** One page of everyone's security log (or one user's, one kind's), newest first. */
export function allActivity({ user, kind, before } = {}) {
  const q = new URLSearchParams({ limit: "50" });
  if (user) q.set("user", user);
  if (kind) q.set("kind", kind);
  if (before) q.set("before", before);
  return call("GET", `/api/admin/activity?${q}`);
}
/** The newest messages older than `before` (a message id), oldest first. */
export const history = async (room, before, limit = 50) =>
  (await call("GET", `/api/chat/rooms/${encodeURIComponent(room)}/messages?limit=${limit}${before ? `&before=${encodeURIComponent(before)}` : ""}`)).messages;

/**
 * The chat socket. Handlers: onFrame(frame), onState("open"|"closed"|"reconnecting", detail).
 * Reconnects with backoff and joins its rooms again, unless the session
 * ended (4401: onSessionEnded handlers run) or close() was called.
 */
export class Chat {
  constructor({ onFrame = () => {}, onState = () => {} } = {}) {
    this.onFrame = onFrame;
    this.onState = onState;
    this.rooms = new Set();
    this.closed = false;
    this.delay = 500;
    this.ws = null;
  }

  connect() {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/chat`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.delay = 500;
      this.onState("open");
      for (const room of this.rooms) this.#send({ type: "join", room });
    });
    ws.addEventListener("message", (event) => {
      try {
        this.onFrame(JSON.parse(event.data));
      } catch {
        // not JSON: ignore
      }
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      if (event.code === 4401) {
        this.closed = true;
        this.onState("closed", "Your session has ended.");
        sessionEnded("Your session was ended (signed out here or elsewhere, or revoked).");
        return;
      }
      if (this.closed) {
        this.onState("closed", event.reason || "closed");
        return;
      }
      this.onState("reconnecting", event.reason || `closed (${event.code})`);
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 10000);
    });
    return this;
  }

  join(room) {
    this.rooms.add(room);
    this.#send({ type: "join", room });
  }

  leave(room) {
    this.rooms.delete(room);
    this.#send({ type: "leave", room });
  }

  send(room, text) {
    return this.#send({ type: "message", room, text });
  }

  close() {
    this.closed = true;
    if (this.ws) this.ws.close(1000);
  }

  #send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }
}
