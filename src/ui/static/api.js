/**
 * Calls to the gateway. The session cookie authenticates them (same origin, so the browser sends it); the admin key
 * never lives in the page. A 401 means the session ended: the app shows the login form again.
 */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const listeners = new Set();
/** Called with no argument whenever an answer says the session is gone. */
export function onUnauthorized(listener) {
  listeners.add(listener);
}

export async function api(path, { method = "GET", body, headers = {}, signal } = {}) {
  const init = { method, headers: { accept: "application/json", ...headers }, credentials: "same-origin", signal };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  return read(res, path);
}

export async function read(res, path) {
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!res.ok) {
    const error = data && typeof data === "object" && data.error ? data.error : {};
    if (res.status === 401 && !path.startsWith("/v1/") && !path.startsWith("/ui/login")) for (const l of listeners) l();
    throw new ApiError(res.status, error.code ?? String(res.status), error.message ?? `${path} answered ${res.status}`);
  }
  return data;
}

export async function text(path) {
  const res = await fetch(path, { credentials: "same-origin" });
  if (res.status === 401) for (const l of listeners) l();
  if (!res.ok) throw new ApiError(res.status, String(res.status), `${path} answered ${res.status}`);
  return res.text();
}
