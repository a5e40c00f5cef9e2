/* Clerk agent console. Everything a shopper wrote is put in the page with textContent,
 * never as markup. Live updates: one WebSocket (/console/ws) says which conversation
 * changed; the page refetches what it shows through the JSON API. */
(function () {
  "use strict";
  var body = document.body;
  var prefix = body.getAttribute("data-prefix") || "/console";
  var me = body.getAttribute("data-agent");
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var page = body.getAttribute("data-page");
  var clockSkew = 0;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; }
      else if (k === "class") { node.className = attrs[k]; }
      else if (attrs[k] !== null && attrs[k] !== undefined) { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { node.appendChild(c); } });
    return node;
  }

  function api(path, payload) {
    var init = { credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (payload !== undefined) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRF-Token"] = csrf;
      init.body = JSON.stringify(payload);
    }
    return fetch(prefix + "/api/" + path, init).then(function (r) {
      if (r.status === 401) { location.href = prefix + "/login?next=" + encodeURIComponent(location.pathname + location.search); }
      return r.json().then(function (data) { return { ok: r.ok, status: r.status, data: data }; });
    });
  }

  function waited(since) {
    var s = Math.max(0, Math.round(Date.now() / 1000 - clockSkew - since));
    if (s < 60) { return s + "s"; }
    var m = Math.floor(s / 60);
    if (m < 60) { return m + "m " + (s % 60) + "s"; }
    return Math.floor(m / 60) + "h " + (m % 60) + "m";
  }

  function pct(x) { return (typeof x === "number") ? Math.round(x * 100) + "%" : ""; }

  // ------------------------------------------------------------------ live socket
  var listeners = [];
  var live = document.getElementById("live");
  var retry = 500;
  function connect() {
    if (!me) { return; }
    var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + prefix + "/ws");
    ws.onopen = function () {
      retry = 500;
      if (live) { live.textContent = "live"; live.setAttribute("data-state", "live"); }
      listeners.forEach(function (fn) { fn({ type: "reconnected" }); });
    };
    ws.onmessage = function (e) {
      var msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      if (msg.type === "change") { listeners.forEach(function (fn) { fn(msg); }); }
    };
    ws.onclose = function (e) {
      if (live) { live.textContent = "offline, reconnecting…"; live.setAttribute("data-state", "offline"); }
      if (e.code === 4401) { location.href = prefix + "/login"; return; }
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }

  // ------------------------------------------------------------------ queue
  function queuePage() {
    var tbody = document.querySelector("#queue tbody");
    var empty = document.getElementById("queue-empty");
    function render(data) {
      clockSkew = Date.now() / 1000 - data.now;
      tbody.textContent = "";
      empty.hidden = data.queue.length > 0;
      data.queue.forEach(function (q) {
        var link = el("a", { href: prefix + "/conversation?id=" + encodeURIComponent(q.conversation_id), text: "Open" });
        var action = el("td", {}, [link]);
        if (q.status === "requested") {
          var take = el("button", { type: "button", class: "take", text: "Take over" });
          take.addEventListener("click", function () {
            take.disabled = true;
            api("claim", { id: q.conversation_id }).then(function (r) {
              if (r.ok) { location.href = link.getAttribute("href"); }
              else { take.textContent = r.data.error || "Could not take it"; }
            });
          });
          action.appendChild(take);
        }
        var customer = q.customer_name ? q.customer_name + " (" + q.customer_id + ")" : (q.customer_id || "unknown");
        tbody.appendChild(el("tr", { "data-conversation": q.conversation_id, "data-status": q.status }, [
          el("td", { class: "status", text: q.status === "claimed" ? "with " + q.agent : "waiting" }),
          el("td", { class: "channel", text: q.channel }),
          el("td", { class: "wait", "data-since": String(q.requested_at), text: waited(q.requested_at) }),
          el("td", { class: "reason", text: q.reason + (q.ticket_id ? " · " + q.ticket_id : "") }),
          el("td", { class: "customer", text: customer }),
          el("td", { class: "last", text: q.last_message || "" }),
          action
        ]));
      });
    }
    function load() { api("queue").then(function (r) { if (r.ok) { render(r.data); } }); }
    listeners.push(function (msg) {
      var handoff = (msg.kinds || []).some(function (k) { return k.indexOf("handoff:") === 0; });
      if (msg.type === "reconnected" || handoff || msg.status === "requested" || msg.status === "claimed") { load(); }
    });
    setInterval(function () {
      document.querySelectorAll("td.wait").forEach(function (td) {
        td.textContent = waited(parseFloat(td.getAttribute("data-since")));
      });
    }, 1000);
    load();
  }

  // ------------------------------------------------------------------ conversation
  function conversationPage() {
    var root = document.getElementById("conversation");
    var id = root.getAttribute("data-id");
    var list = document.getElementById("transcript");
    var stateEl = document.getElementById("conv-state");
    var errorEl = document.getElementById("conv-error");
    var claimBtn = document.getElementById("claim");
    var replyForm = document.getElementById("reply-form");
    var noteForm = document.getElementById("note-form");
    var endForms = document.getElementById("end-forms");
    var current = null;

    function showError(text) { errorEl.textContent = text || ""; errorEl.hidden = !text; }

    function entry(t) {
      if (t.type === "user") {
        var badge = t.intent ? el("span", { class: "intent", text: t.intent + " " + pct(t.confidence) }) : null;
        var rank = (t.ranking || []).slice(1).map(function (r) { return r.name + " " + pct(r.confidence); }).join(", ");
        var ents = (t.entities || []).map(function (x) { return x.entity + "=" + x.value; }).join(", ");
        return el("li", { class: "msg user", "data-kind": "user" }, [
          el("span", { class: "who", text: "Shopper" }), el("p", { class: "text", text: t.text }),
          el("p", { class: "why" }, [badge,
            rank ? el("span", { class: "ranking", text: "then " + rank }) : null,
            ents ? el("span", { class: "entities", text: ents }) : null])
        ]);
      }
      if (t.type === "bot") {
        var cites = (t.citations || []).map(function (c, i) {
          return el("li", { class: "citation", text: "[" + (c.index || i + 1) + "] " + (c.title || "") + (c.source ? " — " + c.source : "") });
        });
        return el("li", { class: "msg bot", "data-kind": "bot" }, [
          el("span", { class: "who", text: "Bot" }), el("p", { class: "text", text: t.text || "" }),
          cites.length ? el("ul", { class: "citations", "aria-label": "Passages cited" }, cites) : null,
          t.grounded === false ? el("p", { class: "why", text: "not grounded in the knowledge base" }) : null
        ]);
      }
      if (t.type === "action") {
        return el("li", { class: "action", "data-kind": "action", text: "→ " + t.name + (t.policy ? " (" + t.policy + (t.confidence ? " " + pct(t.confidence) : "") + ")" : "") });
      }
      var label = {
        requested: "Handoff requested: " + (t.reason || ""), claimed: (t.agent || "An agent") + " took over",
        agent_message: t.agent || "Agent", note: "Internal note by " + (t.agent || "an agent"),
        returned: (t.agent || "The agent") + " handed back to the bot",
        closed: (t.agent || "The agent") + " closed the conversation: " + (t.reason || "")
      }[t.step] || t.step;
      var cls = t.step === "agent_message" ? "msg agent" : (t.internal ? "note" : "step");
      return el("li", { class: cls, "data-kind": t.step }, [
        el("span", { class: "who", text: label }),
        (t.step === "agent_message" || t.step === "note") ? el("p", { class: "text", text: t.text || "" }) : null
      ]);
    }

    function dl(node, pairs) {
      node.textContent = "";
      pairs.forEach(function (p) {
        if (p[1] === null || p[1] === undefined || p[1] === "") { return; }
        node.appendChild(el("dt", { text: p[0] }));
        node.appendChild(el("dd", { text: String(p[1]) }));
      });
    }

    function ticketBox(t) {
      var box = document.getElementById("work-ticket");
      box.textContent = "";
      if (!t) { box.appendChild(el("p", { class: "hint", text: "None." })); return; }
      var select = el("select", { "aria-label": "Ticket status", id: "ticket-status" },
        ["open", "pending", "solved"].map(function (s) {
          var o = el("option", { value: s, text: s }); if (s === t.status) { o.selected = true; } return o;
        }));
      var save = el("button", { type: "button", id: "ticket-save", text: "Save status" });
      var mine = el("button", { type: "button", id: "ticket-assign", text: "Assign to me" });
      save.addEventListener("click", function () { api("ticket", { id: t.id, status: select.value }).then(load); });
      mine.addEventListener("click", function () { api("ticket", { id: t.id, assignee: "me" }).then(load); });
      box.appendChild(el("p", {}, [el("strong", { text: t.id }), el("span", { text: " · " + t.priority + " · " + t.status + (t.assignee ? " · " + t.assignee : "") })]));
      box.appendChild(el("p", { class: "text", text: t.text }));
      box.appendChild(el("p", {}, [select, save, mine]));
    }

    function render(d) {
      clockSkew = Date.now() / 1000 - d.now;
      current = d;
      list.textContent = "";
      d.transcript.forEach(function (t) { list.appendChild(entry(t)); });
      var h = d.handoff || {};
      var mine = d.status === "claimed" && h.agent === me;
      stateEl.textContent = d.status === "requested" ? "Waiting for an agent (" + waited(h.requested_at) + ")"
        : d.status === "claimed" ? (mine ? "You hold this conversation" : "Held by " + h.agent)
        : d.status === "closed" ? "Closed" : "The bot holds this conversation";
      root.setAttribute("data-status", d.status);
      claimBtn.hidden = d.status !== "requested";
      replyForm.hidden = !mine;
      endForms.hidden = !mine;
      noteForm.hidden = false;
      dl(document.getElementById("handoff"), [["Status", d.status], ["Channel", d.channel], ["Reason", h.reason],
        ["Trigger", h.trigger], ["Agent", h.agent], ["Resolution", h.resolution]]);
      var c = d.customer;
      dl(document.getElementById("customer"), c ? [["Name", c.name], ["Customer", c.user_id], ["Email", c.email], ["Zip", c.zip]] : [["", "Not identified yet."]]);
      var orders = document.getElementById("orders");
      orders.textContent = "";
      d.orders.forEach(function (o) { orders.appendChild(el("li", { text: o.order_id + " · " + o.status + " · " + o.items.join(", ") })); });
      var tickets = document.getElementById("tickets");
      tickets.textContent = "";
      d.tickets.forEach(function (t) { tickets.appendChild(el("li", { text: t.id + " · " + t.status + " · " + t.priority + " · " + t.text })); });
      ticketBox(d.tickets.filter(function (t) { return t.id === d.work_on_ticket; })[0]);
      dl(document.getElementById("slots"), Object.keys(d.slots).map(function (k) { return [k, JSON.stringify(d.slots[k])]; }));
      list.scrollTop = list.scrollHeight;
    }

    function load() {
      return api("conversation?id=" + encodeURIComponent(id)).then(function (r) {
        if (r.ok) { render(r.data); } else { showError(r.data.error); }
      });
    }

    function step(path, payload, done) {
      showError("");
      payload.id = id;
      return api(path, payload).then(function (r) {
        if (!r.ok) { showError(r.data.error || "failed"); }
        else if (done) { done(); }
        return load();
      });
    }

    claimBtn.addEventListener("click", function () { step("claim", {}); });
    replyForm.addEventListener("submit", function (e) {
      e.preventDefault();
      var box = document.getElementById("reply");
      if (!box.value.trim()) { return; }
      step("message", { text: box.value }, function () { box.value = ""; });
    });
    noteForm.addEventListener("submit", function (e) {
      e.preventDefault();
      var box = document.getElementById("note");
      if (!box.value.trim()) { return; }
      step("note", { text: box.value }, function () { box.value = ""; });
    });
    document.querySelectorAll(".canned-reply").forEach(function (b) {
      b.addEventListener("click", function () {
        var box = document.getElementById("reply");
        box.value = b.getAttribute("data-text");
        box.focus();
      });
    });
    document.getElementById("return-form").addEventListener("submit", function (e) {
      e.preventDefault();
      var slots = {};
      document.querySelectorAll("[data-slot]").forEach(function (i) { if (i.value.trim()) { slots[i.getAttribute("data-slot")] = i.value.trim(); } });
      step("return", { slots: slots });
    });
    document.getElementById("close-form").addEventListener("submit", function (e) {
      e.preventDefault();
      var r = document.getElementById("resolution");
      if (!r.value.trim()) { showError("Say how it was resolved."); return; }
      step("close", { resolution: r.value });
    });
    listeners.push(function (msg) { if (msg.type === "reconnected" || msg.conversation === id) { load(); } });
    setInterval(function () {
      if (current && current.status === "requested") {
        stateEl.textContent = "Waiting for an agent (" + waited(current.handoff.requested_at) + ")";
      }
    }, 1000);
    load();
  }

  if (page === "queue") { queuePage(); }
  if (page === "conversation") { conversationPage(); }
  connect();
})();
