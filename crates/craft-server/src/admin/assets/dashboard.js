// The dashboard: figures, players and warnings live from /api/events;
// actions with the operator token.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  let actions = false;

  function show(result) {
    const el = $("result");
    el.className = result.ok ? "ok" : "bad";
    const data = result.data || {};
    el.textContent = result.ok
      ? JSON.stringify(data)
      : result.status + ": " + (data.error || "refused");
  }

  function cell(row, value, cls) {
    const td = document.createElement("td");
    td.textContent = value;
    if (cls) {
      td.className = cls;
    }
    row.appendChild(td);
  }

  function players(list) {
    const body = $("player-rows");
    body.replaceChildren();
    if (list.length === 0) {
      const row = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = 7;
      td.className = "empty";
      td.textContent = "nobody online";
      row.appendChild(td);
      body.appendChild(row);
      return;
    }
    for (const p of list) {
      const row = document.createElement("tr");
      cell(row, p.id, "num");
      cell(row, p.nick);
      cell(row, Admin.fmt(p.x, 1), "num");
      cell(row, Admin.fmt(p.y, 1), "num");
      cell(row, Admin.fmt(p.z, 1), "num");
      cell(row, p.server);
      const td = document.createElement("td");
      const kick = document.createElement("button");
      kick.textContent = "Kick";
      kick.disabled = !actions;
      kick.addEventListener("click", async () => {
        if (confirm("Disconnect " + p.nick + "?")) {
          show(await Admin.action("/api/kick", { id: p.id }));
        }
      });
      td.appendChild(kick);
      row.appendChild(td);
      body.appendChild(row);
    }
  }

  function warnings(list) {
    const ul = $("warnings");
    ul.replaceChildren();
    if (list.length === 0) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "none";
      ul.appendChild(li);
      return;
    }
    for (const w of list.slice().reverse()) {
      const li = document.createElement("li");
      li.className = w.level === "ERROR" ? "bad" : "warn";
      li.textContent = new Date(w.time_ms).toLocaleTimeString() + " " + w.level + " " + w.target + ": " + w.text;
      ul.appendChild(li);
    }
  }

  function status(s) {
    actions = s.actions;
    Admin.text($("server"), s.server + " · craft-server " + s.version);
    Admin.text($("players"), s.players_online);
    Admin.text($("fleet"), s.players_fleet === null ? "this server (no bus)" : s.players_fleet + " in the fleet");
    Admin.text($("rate"), Admin.fmt(s.edits_per_second, 1));
    Admin.text($("edits"), s.edits_total + " since start");
    Admin.text($("writes"), s.pending_writes + " / " + s.in_flight_writes);
    Admin.text($("chunks"), s.cached_chunks + " chunks cached");
    Admin.text($("rtt"), s.store_rtt_ms === null ? "–" : Admin.fmt(s.store_rtt_ms, 2) + " ms");
    const store = $("store");
    store.textContent = s.store_ok ? "store answers" : "store unavailable";
    store.className = "sub " + (s.store_ok ? "ok" : "bad");
    Admin.text($("bus"), s.bus);
    const state = $("state");
    state.textContent = s.draining ? "draining" : s.ready ? "ready" : s.not_ready;
    state.className = "value " + (s.ready ? "ok" : s.draining ? "bad" : "warn");
    Admin.text($("version"), s.ready ? "accepting players" : "not accepting players");
    players(s.players);
    warnings(s.warnings);
    $("read-only").hidden = s.actions;
    for (const id of ["token", "token-save", "token-forget", "message", "send", "drain"]) {
      $(id).disabled = !s.actions;
    }
    for (const id of ["rb-user", "rb-minutes", "rollback"]) {
      $(id).disabled = !s.actions || !s.history;
    }
    $("rollback").title = s.history ? "" : "history is not enabled";
  }

  $("token").value = Admin.token() ? "********" : "";
  $("token-save").addEventListener("click", () => {
    const value = $("token").value.trim();
    if (value && value !== "********") {
      Admin.setToken(value);
      $("token").value = "********";
      show({ ok: true, data: { token: "kept for this tab" } });
    }
  });
  $("token-forget").addEventListener("click", () => {
    Admin.setToken("");
    $("token").value = "";
    show({ ok: true, data: { token: "forgotten" } });
  });
  $("send").addEventListener("click", async () => {
    const text = $("message").value.trim();
    if (text) {
      const result = await Admin.action("/api/broadcast", { text });
      show(result);
      if (result.ok) {
        $("message").value = "";
      }
    }
  });
  $("drain").addEventListener("click", async () => {
    if (confirm("Drain this server? Players are warned, every edit is written, then it shuts down.")) {
      show(await Admin.action("/api/drain", {}));
    }
  });
  $("rollback").addEventListener("click", async () => {
    const minutes = Number($("rb-minutes").value) || 10;
    const user = $("rb-user").value.trim() || null;
    show(await Admin.action("/api/rollback", { user, since_ms: Date.now() - minutes * 60000 }));
  });

  Admin.live({
    status,
    disconnected: () => Admin.text($("server"), "reconnecting…"),
  });
})();
