// The page: sign-in, account, admin and chat views over sessiond.js.
import * as api from "/sessiond.js";

const $ = (id) => document.getElementById(id);
const views = ["signin", "recover", "account", "admin", "chat", "consent"];

// An app's sign-in through sessiond (OpenID Connect): the request waiting
// on the server, and whether it needs a (fresh) sign-in or consent.
const oidc = (() => {
  const q = new URLSearchParams(location.search);
  const id = q.get("oidc");
  return id && /^[0-9a-f]{64}$/.test(id)
    ? { id, login: q.get("login") === "1", consent: q.get("consent") === "1" }
    : null;
})();
let current = null; // {user, session}
let chat = null;
let room = "general";
let oldest = null;
let nextUsers = null;

function show(el, text) {
  el.textContent = text || "";
  el.hidden = !text;
}

// A WebAuthn prompt that failed in the browser: closed, timed out or
// refused (NotAllowedError says no more, by design), or something else.
function keyText(err) {
  return err.name === "NotAllowedError" ? "The passkey prompt was closed or timed out; try again."
    : `The browser refused: ${err.message}`;
}

function errorText(err) {
  if (err instanceof DOMException) return keyText(err);
  if (err instanceof api.ApiError) {
    return err.retryAfter ? `${err.message} (try again in ${err.retryAfter} s)` : err.message;
  }
  return "The server could not be reached; try again.";
}

const time = (iso) => (iso ? new Date(iso).toLocaleString() : "");

function device(ua) {
  if (!ua) return "Unknown device";
  const browser = /Edg\//.test(ua) ? "Edge" : /Chrome\//.test(ua) ? "Chrome" : /Firefox\//.test(ua) ? "Firefox"
    : /Safari\//.test(ua) ? "Safari" : /curl\//.test(ua) ? "curl" : ua.split(/[ /]/)[0];
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Windows/.test(ua) ? "Windows"
    : /Mac OS X/.test(ua) ? "macOS" : /Linux/.test(ua) ? "Linux" : "";
  return os ? `${browser} on ${os}` : browser;
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.append(td);
  return td;
}

function button(label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "small";
  b.textContent = label;
  b.addEventListener("click", onClick);
  return b;
}

// A forgotten password: the login to mail a code to, or (from an
// operator's link, #/reset/<token>) the token that stands for it.
let recovery = null;

function route() {
  const wanted = (location.hash.replace(/^#\//, "") || "account").split("?")[0];
  let view = views.includes(wanted) ? wanted : "account";
  const reset = wanted.match(/^reset\/([0-9a-f]{64})$/);
  if (reset) {
    view = "recover";
    startRecovery({ token: reset[1] });
  } else if (view === "recover" && !current) {
    startRecovery(null);
  }
  if (!current && view !== "recover") view = "signin";
  if ((view === "signin" || view === "recover") && current) view = "account";
  // An app asked for a sign-in (or a fresh one), or for consent.
  if (oidc && oidc.login) view = "signin";
  else if (oidc && oidc.consent && current) view = "consent";
  $("oidc-notice").hidden = !(oidc && view === "signin");
  if (view === "consent") loadConsent();
  if (view === "admin" && current.user.role !== "admin") view = "account";
  for (const v of views) $(`view-${v}`).hidden = v !== view;
  $("nav").hidden = !current;
  if (current) $("nav-admin").hidden = current.user.role !== "admin";
  // Autofill is offered when the page is opened on sign-in, not again
  // after a sign-out in the same page (the person is still at the screen).
  if (view === "signin" && !autofillOffered) offerPasskeys();
  else if (view !== "signin") stopOfferingPasskeys();
  if (view === "account") loadAccount();
  if (view === "admin") {
    loadAdmin(true);
    loadAudit(true);
  }
  if (view === "chat") openRoom(room);
  document.title = `sessiond: ${view}`;
}

async function refreshMe() {
  try {
    current = await api.me();
  } catch {
    current = null;
  }
}

/** Back to the app's request once signed in: the server goes on with it. */
function resumeApp() {
  location.assign(`/api/oidc/authorize?resume=${oidc.id}`);
}

async function signedIn(fresh = true) {
  await refreshMe();
  if (current && oidc && oidc.login && fresh) return resumeApp();
  show($("notice"), "");
  if (current) {
    startChat();
    if (!location.hash || location.hash === "#/signin") {
      location.hash = "#/account";
      return; // the hashchange routes
    }
  }
  route();
}

function signedOut(reason) {
  current = null;
  if (chat) chat.close();
  chat = null;
  show($("notice"), reason);
  location.hash = "#/signin";
  route();
}

api.onSessionEnded((reason) => {
  if (current) signedOut(reason);
});

function startChat() {
  if (chat) return;
  chat = new api.Chat({
    onState: (state, detail) => {
      $("chat-state").textContent = detail ? `${state}: ${detail}` : state;
    },
    onFrame: (frame) => {
      if (frame.type === "joined" && frame.room === room) {
        $("messages").replaceChildren();
        frame.history.forEach(addMessage);
        oldest = frame.history.length ? frame.history[0].id : null;
        $("load-older").hidden = !oldest;
      } else if (frame.type === "message" && frame.room === room) {
        addMessage(frame);
      } else if (frame.type === "error") {
        show($("chat-error"), frame.message);
      }
    },
  }).connect();
}

function addMessage(m, atTop) {
  const li = document.createElement("li");
  const from = document.createElement("span");
  from.className = "from";
  from.textContent = m.from.username;
  const text = document.createElement("span");
  text.textContent = m.text;
  const when = document.createElement("time");
  when.dateTime = m.sentAt;
  when.textContent = time(m.sentAt);
  li.append(from, text, when);
  const list = $("messages");
  if (atTop) list.prepend(li);
  else {
    list.append(li);
    list.scrollTop = list.scrollHeight;
  }
}

function openRoom(name) {
  if (!chat) return;
  if (room !== name) chat.leave(room);
  room = name;
  chat.join(room);
}

// The address a code was just mailed to for a change of e-mail.
let pendingEmail = null;

async function loadAccount() {
  if (!current) return;
  $("me-name").textContent = current.user.username;
  $("me-email").textContent = current.user.email;
  $("me-role").textContent = current.user.role;
  $("verify-form").hidden = current.user.emailVerified !== false && !pendingEmail;
  $("verify-notice").textContent = pendingEmail
    ? `Type the code we mailed to ${pendingEmail}: your address changes once it is confirmed.`
    : "Your e-mail address is not verified yet: type the code we mailed to it.";
  // A new code for the current address would replace the change's.
  $("verify-resend").hidden = Boolean(pendingEmail);
  await loadFactors();
  if ($("account-rest").hidden) return;
  try {
    const list = await api.sessions();
    const body = $("sessions").tBodies[0];
    body.replaceChildren();
    for (const s of list) {
      const row = document.createElement("tr");
      row.dataset.id = s.id;
      cell(row, device(s.userAgent) + (s.current ? " (this device)" : ""), s.current ? "current" : "");
      cell(row, s.ip);
      cell(row, time(s.createdAt));
      cell(row, time(s.lastSeenAt));
      cell(row, time(s.expiresAt < s.idleExpiresAt ? s.expiresAt : s.idleExpiresAt));
      const actions = cell(row, "");
      actions.append(button(s.current ? "Sign out" : "Revoke", async () => {
        await api.revokeSession(s.id).catch(() => {});
        if (s.current) signedOut("You signed out.");
        else loadAccount();
      }));
      body.append(row);
    }
  } catch {
    // a 401 has already sent the page to sign-in
    return;
  }
  await loadApps();
  await loadActivity(true);
}

async function loadApps() {
  const body = $("apps").tBodies[0];
  body.replaceChildren();
  let apps = [];
  try {
    apps = await api.apps();
  } catch {
    // no provider on this server: nothing to show
  }
  $("apps-section").hidden = apps.length === 0;
  for (const a of apps) {
    const row = document.createElement("tr");
    cell(row, a.name);
    cell(row, a.scopes.join(" "));
    cell(row, a.consentedAt ? time(a.consentedAt) : "");
    cell(row, String(a.activeGrants));
    cell(row, "").append(button("Revoke", async () => {
      await api.revokeApp(a.clientId).catch(() => {});
      loadApps();
    }));
    body.append(row);
  }
}

/** The consent screen: which app asks for what. */
async function loadConsent() {
  show($("consent-error"), "");
  try {
    const ask = await api.consentRequest(oidc.id);
    $("consent-app").textContent = ask.name;
    const list = $("consent-scopes");
    list.replaceChildren();
    for (const s of ask.scopes) {
      const li = document.createElement("li");
      li.textContent = SCOPES[s] || s;
      list.append(li);
    }
  } catch (err) {
    show($("consent-error"), errorText(err));
  }
}

/** What each scope lets an app see, in words. */
const SCOPES = {
  openid: "Know who you are (your sessiond account id)",
  profile: "See your username",
  email: "See your e-mail address",
  groups: "See your role",
  offline_access: "Stay signed in while your session lasts",
};

async function answerConsent(approve) {
  try {
    const { redirect } = await api.consent(oidc.id, approve);
    location.assign(redirect);
  } catch (err) {
    show($("consent-error"), errorText(err));
  }
}

/** What a log entry says, in words. */
const WHAT = {
  login: "Signed in", login_failed: "Sign-in refused", login_throttled: "Sign-in throttled",
  mfa_passed: "Second step passed", mfa_failed: "Second step failed", logout: "Signed out",
  session_revoked: "Session revoked", sessions_revoked: "Sessions revoked",
  session_expired: "Session expired", password_changed: "Password changed",
  email_changed: "E-mail changed", role_changed: "Role changed", mfa_added: "Second factor added",
  mfa_removed: "Second factor removed", identity_linked: "Identity linked",
  identity_unlinked: "Identity unlinked", user_created: "Account created",
  user_removed: "Account removed", recovery_requested: "Recovery asked for",
  recovery_used: "Recovered", oidc_consent: "App allowed", oidc_tokens_revoked: "App's access revoked",
};

function byWhom(e, self) {
  if (e.actor.kind === "system") return "the server";
  if (e.actor.kind === "admin") return e.actor.userId ? `admin ${e.actor.userId}` : "an operator";
  return e.actor.userId === self ? "you" : `user ${e.actor.userId}`;
}

let nextActivity = null;

async function loadActivity(first) {
  if (first) {
    nextActivity = null;
    $("activity").tBodies[0].replaceChildren();
  }
  try {
    const page = await api.activity(nextActivity);
    nextActivity = page.next;
    $("activity-more").hidden = !nextActivity;
    for (const e of page.entries) {
      const row = document.createElement("tr");
      row.dataset.kind = e.kind;
      cell(row, time(e.time));
      cell(row, (WHAT[e.kind] || e.kind) + (e.detail ? ` (${e.detail})` : ""));
      cell(row, byWhom(e, current && current.user.id));
      cell(row, e.ip || "");
      cell(row, e.userAgent || "");
      $("activity").tBodies[0].append(row);
    }
  } catch {
    // a 401 has already sent the page to sign-in
  }
}

let nextAudit = null;

async function loadAudit(first) {
  if (first) {
    nextAudit = null;
    $("audit").tBodies[0].replaceChildren();
  }
  show($("audit-error"), "");
  try {
    const page = await api.allActivity({
      user: $("audit-user").value.trim(),
      kind: $("audit-kind").value.trim(),
      before: nextAudit,
    });
    nextAudit = page.next;
    $("audit-more").hidden = !nextAudit;
    for (const e of page.entries) {
      const row = document.createElement("tr");
      row.dataset.kind = e.kind;
      cell(row, time(e.time));
      cell(row, e.userId);
      cell(row, WHAT[e.kind] || e.kind);
      cell(row, byWhom(e, null));
      cell(row, e.ip || "");
      cell(row, e.detail || "");
      $("audit").tBodies[0].append(row);
    }
  } catch (e) {
    show($("audit-error"), errorText(e));
  }
}

async function loadAdmin(first) {
  if (first) {
    nextUsers = null;
    $("users").tBodies[0].replaceChildren();
  }
  show($("admin-error"), "");
  try {
    const s = await api.stats();
    $("stats").textContent = `${s.users} users, ${s.sessions} sessions, ${s.wsConnections} open sockets`;
    const page = await api.users(nextUsers);
    nextUsers = page.next;
    $("users-more").hidden = !nextUsers;
    for (const u of page.users) {
      const row = document.createElement("tr");
      row.dataset.id = u.id;
      cell(row, u.username);
      cell(row, u.email);
      const roleCell = cell(row, "");
      const select = document.createElement("select");
      select.setAttribute("aria-label", `Role of ${u.username}`);
      for (const r of ["user", "admin"]) {
        const o = document.createElement("option");
        o.value = r;
        o.textContent = r;
        o.selected = r === u.role;
        select.append(o);
      }
      select.addEventListener("change", () =>
        api.setRole(u.id, select.value).catch((e) => {
          show($("admin-error"), errorText(e));
          select.value = u.role;
        }));
      roleCell.append(select);
      cell(row, time(u.createdAt));
      const actions = cell(row, "");
      actions.append(
        button("End sessions", () => api.revokeUserSessions(u.id).then(() => loadAdmin(true), (e) => show($("admin-error"), errorText(e)))),
        button("Remove", () => api.removeUser(u.id).then(() => loadAdmin(true), (e) => show($("admin-error"), errorText(e)))),
      );
      $("users").tBodies[0].append(row);
    }
  } catch (e) {
    if (e instanceof api.ApiError && e.status === 403) {
      await refreshMe();
      location.hash = "#/account";
    }
  }
}

// Passkeys offered in the username field's autofill while the sign-in
// view shows after the page opened; stopped before a modal prompt (one
// WebAuthn request at a time) and on leaving the view.
let autofill = null;
let autofillOffered = false;

function offerPasskeys() {
  autofillOffered = true;
  if (autofill || !api.webauthnSupported()) return;
  const controller = new AbortController();
  autofill = controller;
  api.passkeyAutofill(controller.signal, $("signin-remember").checked).then(async (answer) => {
    if (autofill === controller) autofill = null;
    if (answer) await signedIn();
  }, (err) => {
    if (autofill === controller) autofill = null;
    if (err.name !== "AbortError") show($("signin-error"), errorText(err));
  });
}

function stopOfferingPasskeys() {
  if (autofill) autofill.abort();
  autofill = null;
}

// The recovery view: first the login (a code is mailed), then the code
// and the new password; a reset link skips the first step.
function startRecovery(proof) {
  recovery = proof;
  $("recover-form").hidden = !!proof;
  $("reset-form").hidden = !proof;
  $("recover-title").textContent = proof && proof.token ? "Set a new password" : "Forgot your password?";
  $("reset-code").hidden = $("reset-code-label").hidden = !proof || !!proof.token;
  show($("recover-sent"), "");
  show($("recover-error"), "");
  show($("reset-error"), "");
}

// The second step of a sign-in: what the password step answered.
let pending = null;
let stepMethod = "totp";

function secondStep(mfa) {
  stopOfferingPasskeys();
  pending = mfa;
  const m = mfa.methods;
  $("signin-form").hidden = true;
  $("step-form").hidden = false;
  $("step-key").hidden = !m.includes("webauthn") || !api.webauthnSupported();
  $("step-switch").hidden = !(m.includes("totp") && m.includes("recovery"));
  setStepMethod(m.includes("totp") ? "totp" : "recovery");
  $("step-code").hidden = $("step-label").hidden = $("step-submit").hidden =
    !m.includes("totp") && !m.includes("recovery");
  $("step-code").focus();
}

function setStepMethod(method) {
  stepMethod = method;
  $("step-code").value = "";
  $("step-label").textContent = method === "totp" ? "The 6-digit code from your authenticator app"
    : "One of your recovery codes (each works once)";
  $("step-switch").textContent = method === "totp" ? "Use a recovery code instead" : "Use your authenticator app instead";
}

function endStep() {
  pending = null;
  show($("step-error"), "");
  $("step-form").hidden = true;
  $("signin-form").hidden = false;
}

// Second factors on the account page. A change refused for want of a
// fresh proof asks for the password, then runs again.
let retry = null;

async function changing(action) {
  show($("mfa-error"), "");
  show($("mfa-done"), "");
  try {
    return await action();
  } catch (err) {
    if (err instanceof api.ApiError && err.code === "reauth_required") {
      retry = action;
      $("reauth-form").hidden = false;
      $("reauth-password").focus();
    } else {
      show($("mfa-error"), errorText(err));
    }
    return undefined;
  }
}

async function loadFactors() {
  let info;
  try {
    info = await api.factors();
  } catch {
    return;
  }
  const body = $("factors").tBodies[0];
  body.replaceChildren();
  for (const f of info.factors) {
    const row = document.createElement("tr");
    row.dataset.id = f.id;
    row.dataset.kind = f.kind;
    cell(row, f.kind === "totp" ? "Authenticator app" : `Key: ${f.name}`);
    cell(row, time(f.createdAt));
    cell(row, f.lastUsedAt ? time(f.lastUsedAt) : "never");
    cell(row, "").append(button("Remove", () => changing(async () => {
      await api.removeFactor(f.id);
      show($("mfa-done"), "Removed; your other sessions were signed out.");
      loadFactors();
    })));
    body.append(row);
  }
  const any = info.factors.length > 0;
  $("factors").hidden = !any;
  $("mfa-off").hidden = any;
  $("mfa-needed").hidden = !(info.required && !any);
  $("account-rest").hidden = info.required && !any;
  $("totp-start").hidden = info.factors.some((f) => f.kind === "totp");
  $("key-form").hidden = !api.webauthnSupported();
  $("recovery-left").textContent = any ? `${info.recoveryCodesLeft} recovery codes left.`
    : "Recovery codes come with a second factor.";
  $("recovery-new").hidden = !any;
}

function showRecoveryCodes(codes) {
  const list = $("recovery-list");
  list.replaceChildren(...codes.map((c) => Object.assign(document.createElement("li"), { textContent: c })));
  const link = $("recovery-download");
  if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([`sessiond recovery codes for ${current.user.username}\n\n${codes.join("\n")}\n`],
    { type: "text/plain" }));
  $("recovery-codes").hidden = false;
}

function wireMfa() {
  $("totp-start").addEventListener("click", () => changing(async () => {
    const e = await api.enrolTotp();
    const svg = new DOMParser().parseFromString(e.qrSvg, "image/svg+xml").documentElement;
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "QR code of the key");
    $("totp-qr").replaceChildren(svg);
    $("totp-secret").textContent = e.secret;
    $("totp-form").hidden = false;
    $("totp-code").focus();
  }));
  $("totp-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    show($("totp-error"), "");
    await changing(async () => {
      try {
        await api.confirmTotp($("totp-code").value.trim());
      } catch (err) {
        if (err instanceof api.ApiError && err.code === "invalid_code") return show($("totp-error"), err.message);
        throw err;
      }
      $("totp-form").hidden = true;
      $("totp-code").value = "";
      show($("mfa-done"), "Authenticator app added. Make recovery codes now, in case you lose it.");
      await loadFactors();
      await refreshMe();
    });
  });
  $("totp-cancel").addEventListener("click", () => {
    $("totp-form").hidden = true;
  });
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    changing(async () => {
      await api.addKey($("key-name").value.trim() || "Passkey");
      $("key-name").value = "";
      show($("mfa-done"), "Key added: it signs you in as a second step, or alone as a passkey.");
      await loadFactors();
      await refreshMe();
    });
  });
  $("recovery-new").addEventListener("click", () => changing(async () => {
    showRecoveryCodes(await api.newRecoveryCodes());
    loadFactors();
  }));
  $("reauth-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    show($("reauth-error"), "");
    try {
      await api.reauth($("reauth-password").value);
    } catch (err) {
      return show($("reauth-error"), errorText(err));
    }
    $("reauth-password").value = "";
    $("reauth-form").hidden = true;
    const again = retry;
    retry = null;
    if (again) changing(again);
  });
}

api.onEnrolmentRequired(() => {
  if (current && location.hash !== "#/account") location.hash = "#/account";
});

function wire() {
  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    show($("signin-error"), "");
    try {
      const answer = await api.signIn($("signin-login").value.trim(), $("signin-password").value,
        $("signin-remember").checked);
      $("signin-password").value = "";
      if (answer.mfa) return secondStep(answer.mfa);
      await signedIn();
    } catch (err) {
      show($("signin-error"), errorText(err));
      // Refused until the address is proved: the code, here.
      $("unverified-form").hidden = !(err instanceof api.ApiError && err.code === "email_unverified");
    }
  });
  $("unverified-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    show($("unverified-error"), "");
    try {
      await api.verifyEmail($("unverified-code").value.trim(), $("signin-login").value.trim());
      $("unverified-form").hidden = true;
      show($("signin-error"), "");
      show($("notice"), "Your e-mail address is verified: sign in.");
    } catch (err) {
      show($("unverified-error"), errorText(err));
    }
  });
  $("unverified-resend").addEventListener("click", async () => {
    show($("unverified-error"), "");
    try {
      await api.resendVerification($("signin-login").value.trim());
      show($("unverified-done"), "A new code is on its way.");
    } catch (err) {
      show($("unverified-error"), errorText(err));
    }
  });
  $("verify-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    show($("verify-error"), "");
    try {
      const answer = await api.verifyEmail($("verify-code").value.trim());
      current.user = answer.user;
      pendingEmail = null;
      $("verify-code").value = "";
      loadAccount();
    } catch (err) {
      show($("verify-error"), errorText(err));
    }
  });
  $("verify-resend").addEventListener("click", async () => {
    show($("verify-error"), "");
    try {
      await api.resendVerification();
      show($("verify-done"), "A new code is on its way.");
    } catch (err) {
      show($("verify-error"), errorText(err));
    }
  });
  $("recover-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    show($("recover-error"), "");
    const login = $("recover-login").value.trim();
    if (!login) return show($("recover-error"), "Enter your username or e-mail.");
    try {
      await api.requestRecovery(login);
      startRecovery({ login });
      show($("recover-sent"), "If that account exists, a code is on its way to its e-mail address. It works for 15 minutes.");
      $("reset-code").focus();
    } catch (err) {
      show($("recover-error"), errorText(err));
    }
  });
  $("reset-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    show($("reset-error"), "");
    const proof = recovery.token ? { token: recovery.token } : { login: recovery.login, code: $("reset-code").value.trim() };
    try {
      const answer = await api.recover(proof, $("reset-password").value);
      $("reset-password").value = "";
      $("reset-code").value = "";
      recovery = null;
      if (answer.mfa) {
        location.hash = "#/signin";
        route();
        return secondStep(answer.mfa);
      }
      location.hash = "#/account";
      await signedIn();
    } catch (err) {
      show($("reset-error"), errorText(err));
    }
  });
  $("passkey-signin").addEventListener("click", async () => {
    show($("signin-error"), "");
    stopOfferingPasskeys();
    try {
      await api.passkeySignIn($("signin-remember").checked);
      await signedIn();
    } catch (err) {
      show($("signin-error"), errorText(err));
    }
  });
  $("step-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    show($("step-error"), "");
    try {
      await api.secondStep(pending.pending, $("step-code").value.trim(), stepMethod);
      endStep();
      await signedIn();
    } catch (err) {
      show($("step-error"), errorText(err));
    }
  });
  $("step-key").addEventListener("click", async () => {
    show($("step-error"), "");
    try {
      await api.keyStep(pending.pending);
      endStep();
      await signedIn();
    } catch (err) {
      show($("step-error"), errorText(err));
    }
  });
  $("step-switch").addEventListener("click", () => setStepMethod(stepMethod === "totp" ? "recovery" : "totp"));
  $("step-cancel").addEventListener("click", endStep);
  wireMfa();
  $("register-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    show($("register-error"), "");
    show($("register-done"), "");
    try {
      const { user } = await api.register($("register-username").value.trim(), $("register-email").value.trim(),
        $("register-password").value);
      show($("register-done"), `Account ${user.username} created: sign in above.`);
      $("signin-login").value = user.username;
      $("register-password").value = "";
    } catch (err) {
      show($("register-error"), errorText(err));
    }
  });
  $("sign-out").addEventListener("click", async () => {
    await api.signOut().catch(() => {});
    signedOut("You signed out.");
  });
  $("revoke-others").addEventListener("click", () => api.revokeOtherSessions().then(loadAccount, () => {}));
  $("password-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    show($("password-error"), "");
    show($("password-done"), "");
    try {
      await api.changePassword($("password-current").value, $("password-new").value);
      $("password-current").value = "";
      $("password-new").value = "";
      show($("password-done"), "Password changed; your other sessions were signed out.");
      loadAccount();
    } catch (err) {
      show($("password-error"), errorText(err));
    }
  });
  $("email-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    show($("email-error"), "");
    const email = $("email-new").value.trim();
    if (!email) return show($("email-error"), "Enter the new address.");
    try {
      await api.changeEmail(email, $("email-password").value);
      $("email-new").value = "";
      $("email-password").value = "";
      pendingEmail = email;
      loadAccount();
    } catch (err) {
      show($("email-error"), errorText(err));
    }
  });
  $("users-more").addEventListener("click", () => loadAdmin(false));
  $("activity-more").addEventListener("click", () => loadActivity(false));
  $("audit-more").addEventListener("click", () => loadAudit(false));
  $("audit-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadAudit(true);
  });
  $("room-form").addEventListener("submit", (e) => {
    e.preventDefault();
    show($("chat-error"), "");
    openRoom($("room-name").value.trim());
  });
  $("send-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("send-text").value;
    if (text && chat && chat.send(room, text)) $("send-text").value = "";
  });
  $("load-older").addEventListener("click", async () => {
    if (!oldest) return;
    const older = await api.history(room, oldest).catch(() => []);
    older.slice().reverse().forEach((m) => addMessage(m, true));
    oldest = older.length ? older[0].id : null;
    $("load-older").hidden = !oldest;
  });
  window.addEventListener("hashchange", async () => {
    // Each navigation reads the user afresh: a role changed or a session
    // ended elsewhere shows at once.
    const was = current;
    if (current) await refreshMe();
    if (was && !current) return signedOut("Your session has ended. Sign in again.");
    route();
  });
}

wire();
$("consent-allow").addEventListener("click", () => answerConsent(true));
$("consent-deny").addEventListener("click", () => answerConsent(false));
$("passkey-signin").hidden = !api.webauthnSupported();
signedIn(false);
