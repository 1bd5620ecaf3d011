// The world map: 256 x 256 PNG tiles from /tiles/{zoom}/{x}/{y} on a
// canvas, player markers as DOM elements, recent edits highlighted; pan
// by dragging, zoom with the wheel or the buttons. Live from /api/events.
"use strict";

(() => {
  const TILE = 256;
  const HIGHLIGHT_MS = 4000;
  const viewport = document.getElementById("viewport");
  const canvas = document.getElementById("map");
  const ctx = canvas.getContext("2d");
  const markers = document.getElementById("markers");
  const coords = document.getElementById("coords");

  // The view: the block column at the centre and screen pixels per block
  // (a power of two; below 1 the server's coarser tiles are used).
  const view = { x: 0, z: 0, scale: 1 };
  let maxZoom = 3;
  const minScale = () => 1 / (1 << maxZoom);
  const maxScale = 8;

  // Tiles by "zoom/x/y": {img, ready, version, retry}.
  const tiles = new Map();
  // Edits on screen: {x, z, until}.
  let highlights = [];
  let players = [];
  let centred = false;
  let frame = 0;

  function zoomLevel() {
    return Math.min(maxZoom, Math.max(0, Math.round(-Math.log2(view.scale))));
  }

  function tile(zoom, tx, ty) {
    const key = zoom + "/" + tx + "/" + ty;
    let t = tiles.get(key);
    if (!t) {
      t = { img: null, ready: false, version: 0, loading: false, retry: 0 };
      tiles.set(key, t);
    }
    if (!t.loading && (!t.ready || t.stale)) {
      load(key, t);
    }
    return t;
  }

  function load(key, t) {
    t.loading = true;
    t.stale = false;
    const img = new Image();
    img.onload = () => {
      t.img = img;
      t.ready = true;
      t.loading = false;
      t.retry = 0;
      redraw();
    };
    img.onerror = () => {
      // 503 while the server renders others: try again a little later.
      t.loading = false;
      t.retry = Math.min(10000, (t.retry || 500) * 2);
      setTimeout(() => {
        if (!t.ready || t.stale) {
          load(key, t);
        }
      }, t.retry);
    };
    t.version += 1;
    img.src = "/tiles/" + key + "?v=" + t.version;
  }

  function resize() {
    canvas.width = viewport.clientWidth;
    canvas.height = viewport.clientHeight;
    redraw();
  }

  function toScreen(x, z) {
    return [
      (x - view.x) * view.scale + canvas.width / 2,
      (z - view.z) * view.scale + canvas.height / 2,
    ];
  }

  function toWorld(sx, sy) {
    return [
      view.x + (sx - canvas.width / 2) / view.scale,
      view.z + (sy - canvas.height / 2) / view.scale,
    ];
  }

  function redraw() {
    if (!frame) {
      frame = requestAnimationFrame(draw);
    }
  }

  function draw() {
    frame = 0;
    ctx.fillStyle = "#0b0e11";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.imageSmoothingEnabled = false;
    const zoom = zoomLevel();
    const span = TILE << zoom;
    const [x0, z0] = toWorld(0, 0);
    const [x1, z1] = toWorld(canvas.width, canvas.height);
    const size = span * view.scale;
    for (let ty = Math.floor(z0 / span); ty * span < z1; ty++) {
      for (let tx = Math.floor(x0 / span); tx * span < x1; tx++) {
        const t = tile(zoom, tx, ty);
        if (t.img) {
          const [sx, sy] = toScreen(tx * span, ty * span);
          ctx.drawImage(t.img, Math.round(sx), Math.round(sy), Math.ceil(size), Math.ceil(size));
        }
      }
    }
    const now = Date.now();
    highlights = highlights.filter((h) => h.until > now);
    for (const h of highlights) {
      const [sx, sy] = toScreen(h.x, h.z);
      const r = Math.max(6, view.scale * 2);
      ctx.globalAlpha = (h.until - now) / HIGHLIGHT_MS;
      ctx.strokeStyle = "#ffe040";
      ctx.lineWidth = 3;
      ctx.strokeRect(sx - r, sy - r, 2 * r + view.scale, 2 * r + view.scale);
      ctx.globalAlpha = 1;
    }
    if (highlights.length) {
      redraw();
    }
    placeMarkers();
  }

  function placeMarkers() {
    const seen = new Set();
    for (const p of players) {
      const id = p.server + "/" + p.id;
      seen.add(id);
      let el = markers.querySelector('[data-key="' + CSS.escape(id) + '"]');
      if (!el) {
        el = document.createElement("div");
        el.className = "player-marker";
        el.dataset.key = id;
        const dot = document.createElement("span");
        dot.className = "dot";
        const nick = document.createElement("span");
        nick.className = "nick";
        el.append(dot, nick);
        markers.appendChild(el);
      }
      el.dataset.nick = p.nick;
      el.title = p.nick + " (" + Math.round(p.x) + ", " + Math.round(p.y) + ", " + Math.round(p.z) + ")";
      el.lastChild.textContent = p.nick;
      const [sx, sy] = toScreen(p.x, p.z);
      el.style.left = Math.round(sx) + "px";
      el.style.top = Math.round(sy) + "px";
    }
    for (const el of Array.from(markers.children)) {
      if (!seen.has(el.dataset.key)) {
        el.remove();
      }
    }
  }

  function home() {
    if (players.length) {
      view.x = players.reduce((a, p) => a + p.x, 0) / players.length;
      view.z = players.reduce((a, p) => a + p.z, 0) / players.length;
    } else {
      view.x = 0;
      view.z = 0;
    }
    redraw();
  }

  function zoomAt(factor, sx, sy) {
    const scale = Math.min(maxScale, Math.max(minScale(), view.scale * factor));
    if (scale === view.scale) {
      return;
    }
    const [wx, wz] = toWorld(sx, sy);
    view.scale = scale;
    // Keep the column under the pointer where it was.
    view.x = wx - (sx - canvas.width / 2) / scale;
    view.z = wz - (sy - canvas.height / 2) / scale;
    redraw();
  }

  function status(s) {
    maxZoom = s.max_zoom;
    players = s.players;
    coords.dataset.players = String(players.length);
    document.getElementById("server").textContent =
      s.server + " · " + s.players_online + " online · " + Admin.fmt(s.edits_per_second, 1) + " edits/s";
    if (!centred && players.length) {
      centred = true;
      home();
    }
    redraw();
  }

  function edits(list) {
    const until = Date.now() + HIGHLIGHT_MS;
    for (const e of list) {
      highlights.push({ x: e.x, z: e.z, until });
      for (let zoom = 0; zoom <= maxZoom; zoom++) {
        const span = TILE << zoom;
        const key = zoom + "/" + Math.floor(e.x / span) + "/" + Math.floor(e.z / span);
        const t = tiles.get(key);
        if (t) {
          t.stale = true;
        }
      }
    }
    redraw();
  }

  // Dragging pans.
  let drag = null;
  viewport.addEventListener("pointerdown", (e) => {
    if (e.target.closest(".controls")) {
      return;
    }
    drag = { x: e.clientX, y: e.clientY, vx: view.x, vz: view.z };
    viewport.setPointerCapture(e.pointerId);
    viewport.classList.add("dragging");
  });
  viewport.addEventListener("pointermove", (e) => {
    const rect = canvas.getBoundingClientRect();
    const [wx, wz] = toWorld(e.clientX - rect.left, e.clientY - rect.top);
    coords.textContent = "x " + Math.floor(wx) + "  z " + Math.floor(wz);
    if (drag) {
      view.x = drag.vx - (e.clientX - drag.x) / view.scale;
      view.z = drag.vz - (e.clientY - drag.y) / view.scale;
      redraw();
    }
  });
  const stop = () => {
    drag = null;
    viewport.classList.remove("dragging");
  };
  viewport.addEventListener("pointerup", stop);
  viewport.addEventListener("pointercancel", stop);
  viewport.addEventListener(
    "wheel",
    (e) => {
      e.preventDefault();
      const rect = canvas.getBoundingClientRect();
      zoomAt(e.deltaY < 0 ? 2 : 0.5, e.clientX - rect.left, e.clientY - rect.top);
    },
    { passive: false },
  );
  document.getElementById("zoom-in").addEventListener("click", () => zoomAt(2, canvas.width / 2, canvas.height / 2));
  document.getElementById("zoom-out").addEventListener("click", () => zoomAt(0.5, canvas.width / 2, canvas.height / 2));
  document.getElementById("home").addEventListener("click", home);
  window.addEventListener("resize", resize);

  resize();
  Admin.live({ status, edits });
})();
