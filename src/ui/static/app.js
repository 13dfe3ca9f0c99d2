/** The dashboard's shell: login, navigation between pages (by URL hash, so the back button and links work), the event stream. */
import { api, ApiError, onUnauthorized } from "./api.js";
import { connect, disconnect, onConnection } from "./events.js";
import { h } from "./dom.js";
import { modelsPage } from "./pages/models.js";
import { livePage } from "./pages/live.js";
import { downloadsPage } from "./pages/downloads.js";
import { compatibilityPage } from "./pages/compatibility.js";
import { playgroundPage } from "./pages/playground.js";

const pages = [modelsPage, livePage, downloadsPage, compatibilityPage, playgroundPage];
const pagesEl = document.getElementById("pages");
const nav = document.getElementById("nav");
const login = document.getElementById("login");
const logout = document.getElementById("logout");
const conn = document.getElementById("conn");
let started = false;
let current = null;
let session = { auth_required: false, authenticated: false, api_key_required: false };

function showLogin(message = "") {
  disconnect();
  nav.hidden = true;
  logout.hidden = true;
  pagesEl.hidden = true;
  login.hidden = false;
  document.getElementById("login-error").textContent = message;
  document.getElementById("login-key").focus();
}

function start() {
  login.hidden = true;
  nav.hidden = false;
  pagesEl.hidden = false;
  logout.hidden = !session.auth_required;
  if (!started) {
    started = true;
    for (const page of pages) {
      page.el = h(
        "section",
        { id: `page-${page.id}`, "aria-labelledby": `title-${page.id}`, hidden: true },
        h("h2", { id: `title-${page.id}` }, page.title),
      );
      pagesEl.append(page.el);
      page.mount(page.el, session);
    }
    window.addEventListener("hashchange", route);
  }
  connect();
  route();
}

function route() {
  const id = location.hash.slice(1) || "models";
  const page = pages.find((p) => p.id === id) ?? pages[0];
  for (const link of nav.querySelectorAll("a")) {
    if (link.getAttribute("href") === `#${page.id}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (current && current !== page) {
    current.el.hidden = true;
    current.hide?.();
  }
  current = page;
  page.el.hidden = false;
  page.show?.();
  document.title = `${page.title} · Opta LMX`;
}

document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("login-key");
  const error = document.getElementById("login-error");
  error.textContent = "";
  try {
    await api("/ui/login", { method: "POST", body: { key: input.value } });
    input.value = "";
    session = { ...session, authenticated: true };
    start();
  } catch (e) {
    error.textContent =
      e instanceof ApiError && e.status === 401
        ? "Wrong admin key: check admin_key (or LMX_ADMIN_KEY) in the server's configuration."
        : `Login failed: ${e.message}`;
    input.select();
  }
});

logout.addEventListener("click", async () => {
  await api("/ui/logout", { method: "POST" }).catch(() => {});
  showLogin("Logged out.");
});

onUnauthorized(() => showLogin("Your session ended: log in again."));
onConnection((state) => (conn.textContent = state === "live" ? "● live" : state === "reconnecting" ? "○ reconnecting…" : "○ disconnected"));

session = await api("/ui/session");
if (session.auth_required && !session.authenticated) showLogin();
else start();
