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
  if (res.status === 401 && needsSession) sessionEnded("Your session has ended. Sign in again.");
  throw new ApiError(res.status, err.code, err.message, retry ? Number(retry) : null);
}

const open = { needsSession: false };

/** Signs in by user name or e-mail; `remember: false` ends the cookie with the browser. */
export function signIn(login, password, remember = true) {
  const who = login.includes("@") ? { email: login } : { username: login };
  return call("POST", "/api/auth/login", { ...who, password, remember }, open);
}
/** Signs in with a Firebase or OIDC ID token. */
export const signInWithIdToken = (idToken, remember = true) =>
  call("POST", "/api/auth/idtoken", { idToken, remember }, open);
export const register = (username, email, password) =>
  call("POST", "/api/auth/register", { username, email, password }, open);
export const signOut = () => call("POST", "/api/auth/logout", undefined, open);
/** `{user, session}`, or an ApiError 401 when signed out. */
export const me = () => call("GET", "/api/auth/me", undefined, open);
export const sessions = async () => (await call("GET", "/api/auth/sessions")).sessions;
export const revokeSession = (id) => call("DELETE", `/api/auth/sessions/${encodeURIComponent(id)}`);
export const revokeOtherSessions = () => call("DELETE", "/api/auth/sessions");
/** `currentPassword` may be omitted by a user who has none yet. */
export const changePassword = (currentPassword, newPassword) =>
  call("POST", "/api/auth/password", currentPassword ? { currentPassword, newPassword } : { newPassword });
export const identities = async () => (await call("GET", "/api/auth/identities")).identities;
export const users = (after) =>
  call("GET", `/api/admin/users?limit=50${after ? `&after=${encodeURIComponent(after)}` : ""}`);
export const setRole = (id, role) => call("PATCH", `/api/admin/users/${encodeURIComponent(id)}`, { role });
export const removeUser = (id) => call("DELETE", `/api/admin/users/${encodeURIComponent(id)}`);
export const revokeUserSessions = (id) => call("DELETE", `/api/admin/users/${encodeURIComponent(id)}/sessions`);
export const stats = () => call("GET", "/api/admin/stats");
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
