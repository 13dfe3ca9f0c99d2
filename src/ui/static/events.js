/**
 * One EventSource on /admin/events for the whole page (the browser reconnects by itself); pages subscribe by
 * event name: snapshot, model, queue, download.
 */
const handlers = new Map();
let source = null;
let statusListener = () => {};

export function on(name, handler) {
  if (!handlers.has(name)) handlers.set(name, new Set());
  handlers.get(name).add(handler);
  if (source) listen(name);
}

function listen(name) {
  source.addEventListener(name, (event) => {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    for (const handler of handlers.get(name) ?? []) handler(data);
  });
}

export function onConnection(listener) {
  statusListener = listener;
}

export function connect() {
  if (source) return;
  source = new EventSource("/admin/events");
  source.addEventListener("open", () => statusListener("live"));
  source.addEventListener("error", () => statusListener(source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting"));
  for (const name of handlers.keys()) listen(name);
}

export function disconnect() {
  source?.close();
  source = null;
}
