// Shared by the dashboard and the map: the operator token (kept in this
// tab's sessionStorage only, sent as a bearer header), JSON requests and
// the live event stream.
"use strict";

const Admin = (() => {
  const KEY = "craft-admin-token";

  function token() {
    return sessionStorage.getItem(KEY) || "";
  }

  function setToken(value) {
    if (value) {
      sessionStorage.setItem(KEY, value);
    } else {
      sessionStorage.removeItem(KEY);
    }
  }

  // POSTs `body` as JSON with the token; resolves to {ok, status, data}.
  async function action(path, body) {
    const headers = { "Content-Type": "application/json" };
    const t = token();
    if (t) {
      headers.Authorization = "Bearer " + t;
    }
    const response = await fetch(path, {
      method: "POST",
      headers,
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try {
      data = await response.json();
    } catch (e) {
      data = { error: response.statusText };
    }
    return { ok: response.ok, status: response.status, data };
  }

  // Calls handlers.status(figures) and handlers.edits(list) as the server
  // sends them. The first figures come from /api/status; the event stream
  // opens a moment later, so that a browser waiting for the network to
  // settle (a headless screenshot) gets the first picture: a stream never
  // settles.
  function live(handlers) {
    const first = fetch("/api/status")
      .then((r) => r.json())
      .then((s) => handlers.status && handlers.status(s))
      .catch(() => {});
    first.then(() => setTimeout(() => stream(handlers), STREAM_DELAY_MS));
  }

  const STREAM_DELAY_MS = 1000;

  function stream(handlers) {
    const source = new EventSource("/api/events");
    source.addEventListener("status", (e) => handlers.status && handlers.status(JSON.parse(e.data)));
    source.addEventListener("edits", (e) => handlers.edits && handlers.edits(JSON.parse(e.data)));
    source.addEventListener("error", () => handlers.disconnected && handlers.disconnected());
    return source;
  }

  function text(el, value) {
    el.textContent = value;
  }

  function fmt(value, digits) {
    if (value === null || value === undefined) {
      return "–";
    }
    return Number(value).toFixed(digits);
  }

  return { token, setToken, action, live, text, fmt };
})();
