// The page: sign-in, account, admin and chat views over sessiond.js.
import * as api from "/sessiond.js";

const $ = (id) => document.getElementById(id);
const views = ["signin", "account", "admin", "chat"];
let current = null; // {user, session}
let chat = null;
let room = "general";
let oldest = null;
let nextUsers = null;

function show(el, text) {
  el.textContent = text || "";
  el.hidden = !text;
}

function errorText(err) {
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

function route() {
  const wanted = (location.hash.replace(/^#\//, "") || "account").split("?")[0];
  let view = views.includes(wanted) ? wanted : "account";
  if (!current) view = "signin";
  if (view === "signin" && current) view = "account";
  if (view === "admin" && current.user.role !== "admin") view = "account";
  for (const v of views) $(`view-${v}`).hidden = v !== view;
  $("nav").hidden = !current;
  if (current) $("nav-admin").hidden = current.user.role !== "admin";
  if (view === "account") loadAccount();
  if (view === "admin") loadAdmin(true);
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

async function signedIn() {
  await refreshMe();
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

async function loadAccount() {
  if (!current) return;
  $("me-name").textContent = current.user.username;
  $("me-email").textContent = current.user.email;
  $("me-role").textContent = current.user.role;
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

function wire() {
  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    show($("signin-error"), "");
    try {
      await api.signIn($("signin-login").value.trim(), $("signin-password").value, $("signin-remember").checked);
      $("signin-password").value = "";
      await signedIn();
    } catch (err) {
      show($("signin-error"), errorText(err));
    }
  });
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
  $("users-more").addEventListener("click", () => loadAdmin(false));
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
signedIn();
