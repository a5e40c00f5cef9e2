/*
 * Clerk chat widget. Embed with one tag:
 *
 *   <script src="https://your-clerk-server/widget/clerk.js" defer
 *           data-title="Acme help" data-color="#7c3aed"
 *           data-greeting="Hi! Ask me about your order." data-server="https://your-clerk-server"></script>
 *
 * Every data-* attribute is optional: the server's settings (CLERK_WIDGET_*) are the
 * defaults and the server is the one the script came from. The widget lives in a shadow
 * root, talks to the server over one WebSocket (protocol: bot/channels/widget.py), keeps
 * its session id in localStorage so the conversation survives reloads, queues messages
 * typed while offline (also in localStorage) and sends them once, in order, when the
 * connection is back. Shopper and bot text is only ever inserted as text, never as HTML.
 *
 * The widget's own words (status, labels, stock) and the store's currency come from the
 * server (WORDING: the domain's utter_widget_* responses, Settings.currency); they are
 * inserted as text too.
 */
(function () {
  "use strict";

  var DEFAULTS = /*CLERK_DEFAULTS*/{};
  var WORDING = /*CLERK_WORDING*/{};
  // The words of a key the server did not send: Clerk's default utter_widget_<key>
  // responses (bot/dialogue/default_responses.yml; a test keeps the two the same).
  var FALLBACK = {
    "connecting": "Connecting…",
    "reconnecting": "Reconnecting…",
    "online": "Online",
    "offline": "Offline — reconnecting…",
    "open_chat": "Open chat with {title}",
    "close_chat": "Close chat",
    "conversation": "Conversation with {title}",
    "typing": "{title} is typing…",
    "placeholder": "Type your message…",
    "message": "Message",
    "send": "Send",
    "queued": "Waiting for connection…",
    "held": "Will send in a moment…",
    "sending": "Sending…",
    "not_sent": "Not sent",
    "products": "Products",
    "in_stock": "In stock",
    "out_of_stock": "Out of stock",
    "quick_replies": "Quick replies",
    "agent": "{agent} · support team",
    "agent_unnamed": "Support",
    "rate_limited": "You're sending messages quickly — I'll send yours in {seconds} s.",
    "turn_failed": "Sorry, something went wrong on our side. Please try again.",
    "feedback_refused": "Sorry, I couldn't record that rating."
  };
  var STRINGS = WORDING.strings || {};
  var CURRENCY = WORDING.currency || "USD";
  // currentScript is null for scripts run later by tag managers: find the tag by its src
  var script = document.currentScript || document.querySelector('script[src*="/widget/clerk.js"]');
  if (!script || window.__clerkWidgetLoaded) { return; }
  window.__clerkWidgetLoaded = true;

  var data = script.dataset || {};
  var scriptOrigin = new URL(script.src, location.href).origin;
  var SERVER = (data.server || DEFAULTS.server || scriptOrigin).replace(/\/+$/, "");
  var TITLE = data.title || DEFAULTS.title || "Clerk";
  var GREETING = data.greeting || DEFAULTS.greeting || "";
  var COLOR = data.color || DEFAULTS.color || "#0f766e";
  var WS_URL = SERVER.replace(/^http/, "ws") + "/widget/ws";
  var KEY = "clerk:" + SERVER + ":";
  var MAX_CHARS = 4000;
  var PING_EVERY_MS = 25000;
  var PONG_WAIT_MS = 10000;

  /** The widget's words ``key``, each {name} in them replaced by ``values[name]`` (nothing
   * when missing). Plain text for textContent and attributes, never HTML. */
  function t(key, values) {
    var text = typeof STRINGS[key] === "string" ? STRINGS[key] : FALLBACK[key];
    return String(text == null ? "" : text).replace(/\{(\w+)\}/g, function (hole, name) {
      return values && values[name] != null ? String(values[name]) : "";
    });
  }

  // ------------------------------------------------------------------ storage
  var memory = {};
  function store(kind) {
    try {
      var s = window[kind];
      s.setItem(KEY + "probe", "1");
      s.removeItem(KEY + "probe");
      return s;
    } catch (e) {
      return { getItem: function (k) { return memory[k] || null; },
               setItem: function (k, v) { memory[k] = String(v); },
               removeItem: function (k) { delete memory[k]; } };
    }
  }
  var local = store("localStorage");
  var perTab = store("sessionStorage");
  function loadOutbox() {
    try { return JSON.parse(local.getItem(KEY + "outbox") || "[]"); } catch (e) { return []; }
  }
  function saveOutbox() { local.setItem(KEY + "outbox", JSON.stringify(outbox)); }
  function newId() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID().replace(/-/g, ""); }
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  // ------------------------------------------------------------------ DOM helpers
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; }
      else if (k === "class") { node.className = attrs[k]; }
      else if (k === "hidden") { node.hidden = !!attrs[k]; }
      else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { node.appendChild(c); } });
    return node;
  }
  function svg(path) {
    var ns = "http://www.w3.org/2000/svg";
    var s = document.createElementNS(ns, "svg");
    s.setAttribute("viewBox", "0 0 24 24");
    s.setAttribute("aria-hidden", "true");
    s.setAttribute("focusable", "false");
    var p = document.createElementNS(ns, "path");
    p.setAttribute("d", path);
    p.setAttribute("fill", "currentColor");
    s.appendChild(p);
    return s;
  }
  var URL_RE = /https?:\/\/[^\s<>"'`)\]]+[^\s<>"'`)\].,;:!?]/g;
  /** Text with http(s) links made clickable; everything else stays plain text. */
  function richText(text) {
    var frag = document.createDocumentFragment();
    var last = 0;
    String(text).replace(URL_RE, function (url, at) {
      frag.appendChild(document.createTextNode(text.slice(last, at)));
      frag.appendChild(el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: url }));
      last = at + url.length;
      return url;
    });
    frag.appendChild(document.createTextNode(String(text).slice(last)));
    return frag;
  }
  /** Dark or white text, whichever reads better on ``color`` (WCAG relative luminance). */
  function readableOn(color) {
    var probe = document.createElement("span");
    probe.style.color = color;
    probe.style.display = "none";
    document.documentElement.appendChild(probe);
    var rgb = (getComputedStyle(probe).color.match(/[\d.]+/g) || [0, 0, 0]).slice(0, 3).map(Number);
    probe.remove();
    var lin = rgb.map(function (c) {
      c = c / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    var luminance = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
    return luminance > 0.18 ? "#111827" : "#ffffff";  // where both contrasts are equal
  }
  var money = (function () {
    try { return new Intl.NumberFormat(undefined, { style: "currency", currency: CURRENCY }); }
    catch (e) { return { format: function (n) { return Number(n).toFixed(2) + " " + CURRENCY; } }; }
  })();

  // ------------------------------------------------------------------ the widget's DOM
  var host = el("div", { id: "clerk-widget" });
  if (window.CSS && CSS.supports && CSS.supports("color", COLOR)) {
    host.style.setProperty("--clerk-accent", COLOR);
    host.style.setProperty("--clerk-accent-text", readableOn(COLOR));
  }
  var root = host.attachShadow({ mode: "open" });
  root.appendChild(el("link", { rel: "stylesheet", href: SERVER + "/widget/clerk.css" }));

  var launcher = el("button", {
    class: "launcher", type: "button", "aria-label": t("open_chat", { title: TITLE }),
    "aria-expanded": "false", "aria-controls": "clerk-panel", "aria-haspopup": "dialog"
  }, [svg("M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z")]);
  var titleEl = el("h2", { id: "clerk-title", text: TITLE });
  var statusEl = el("p", { class: "status", role: "status", "data-state": "connecting", text: t("connecting") });
  var closeBtn = el("button", { class: "close", type: "button", "aria-label": t("close_chat"), text: "×" });
  var log = el("div", {
    class: "log", role: "log", "aria-live": "polite", "aria-relevant": "additions",
    "aria-label": t("conversation", { title: TITLE }), tabindex: "0"
  });
  var typing = el("div", { class: "typing", role: "status", hidden: true }, [
    el("span", { class: "dots", "aria-hidden": "true" }, [el("span"), el("span"), el("span")]),
    el("span", { text: t("typing", { title: TITLE }) })
  ]);
  var input = el("textarea", {
    id: "clerk-input", rows: "1", maxlength: String(MAX_CHARS), placeholder: t("placeholder"),
    autocomplete: "off", "aria-label": t("message")
  });
  var sendBtn = el("button", { class: "send", type: "submit", "aria-label": t("send") },
    [svg("M3 20.5 21 12 3 3.5v6.6l12 1.9-12 1.9z")]);
  var form = el("form", { class: "composer" }, [
    el("label", { class: "sr-only", for: "clerk-input", text: t("message") }), input, sendBtn
  ]);
  var panel = el("section", {
    class: "panel", id: "clerk-panel", role: "dialog", "aria-modal": "false",
    "aria-labelledby": "clerk-title", hidden: true
  }, [
    el("div", { class: "head" }, [el("div", {}, [titleEl, statusEl]), closeBtn]),
    log, typing, form
  ]);
  root.appendChild(launcher);
  root.appendChild(panel);

  // ------------------------------------------------------------------ state
  var session = local.getItem(KEY + "session");
  var outbox = loadOutbox();        // [{id, text, title?}] not yet acknowledged, in order
  var inflight = null;              // id of the outbox head, sent and awaiting its ack
  var ws = null;
  var welcomed = false;
  var attempts = 0;
  var reconnectTimer = null;
  var pingTimer = null;
  var pongTimer = null;
  var holdUntil = 0;                // rate limited: do not send before this time
  var holdTimer = null;

  function setStatus(state, text) {
    statusEl.setAttribute("data-state", state);
    statusEl.textContent = text;
  }
  function setTyping(on) { typing.hidden = !on; if (on) { scrollDown(); } }
  function scrollDown() { log.scrollTop = log.scrollHeight; }
  function find(id) { return log.querySelector('[data-id="' + CSS.escape(id) + '"]'); }

  // ------------------------------------------------------------------ rendering
  function renderUser(id, text, state) {
    var node = find(id);
    if (!node) {
      node = el("div", { class: "msg user", "data-id": id }, [
        el("div", { class: "bubble", text: text }),
        el("span", { class: "meta", hidden: true })
      ]);
      log.appendChild(node);
      scrollDown();
    }
    setPending(node, state);
    return node;
  }
  function setPending(node, state) {
    var meta = node.querySelector(".meta");
    if (!meta) { return; }
    if (!state) { meta.hidden = true; meta.textContent = ""; node.removeAttribute("data-state"); return; }
    node.setAttribute("data-state", state);
    meta.hidden = false;
    meta.textContent = t(state === "queued" ? "queued" : state === "held" ? "held" : "sending");
  }
  function productCards(products) {
    var list = el("ul", { class: "cards", "aria-label": t("products") });
    products.forEach(function (p) {
      var opts = Object.keys(p.options || {}).map(function (k) { return k + ": " + p.options[k]; });
      var available = !!p.available;
      list.appendChild(el("li", { class: "card" }, [
        el("h3", { text: String(p.name || "") }),
        opts.length ? el("p", { class: "opts", text: opts.join(" · ") }) : null,
        p.price != null ? el("p", { class: "price", text: money.format(Number(p.price)) }) : null,
        el("p", { class: "stock " + (available ? "in" : "out"), text: t(available ? "in_stock" : "out_of_stock") }),
        p.reason ? el("p", { class: "reason", text: String(p.reason) }) : null
      ]));
    });
    return list;
  }
  /** With product cards, the text's bullet list repeats them: keep its introduction. */
  function cardIntro(text) {
    var lines = String(text || "").split("\n");
    var intro = [];
    for (var i = 0; i < lines.length; i++) {
      if (/^\s*[•\-*]\s/.test(lines[i])) { break; }
      intro.push(lines[i]);
    }
    return intro.join("\n").trim();
  }
  function renderBot(msg) {
    var custom = msg.custom || {};
    var cards = custom.type === "product_cards" && Array.isArray(custom.products) && custom.products.length;
    var text = msg.text || "";
    if (cards) { text = cardIntro(text) || text; }
    var node = el("div", { class: "msg bot", "data-id": msg.id });
    if (custom.type === "handoff_notice") { node.className = "msg system"; }
    if (custom.type === "agent_message") {
      // a person from the store's team writes now, not the bot: say who
      node.className = "msg bot agent";
      node.appendChild(el("span", { class: "who", text: t("agent", { agent: custom.agent || t("agent_unnamed") }) }));
    }
    if (text) { node.appendChild(el("div", { class: "bubble" }, [richText(text)])); }
    if (msg.image && /^https?:\/\//.test(msg.image)) {
      node.appendChild(el("div", { class: "bubble" }, [el("img", { src: msg.image, alt: "" })]));
    }
    if (cards) { node.appendChild(productCards(custom.products)); }
    if (msg.buttons && msg.buttons.length) {
      var group = el("div", { class: "replies", role: "group", "aria-label": t("quick_replies") });
      msg.buttons.forEach(function (b) {
        var btn = el("button", { type: "button", text: b.title || b.payload });
        btn.addEventListener("click", function () {
          if (btn.disabled) { return; }
          btn.setAttribute("aria-pressed", "true");
          send(b.payload || b.title, b.title);
          input.focus();
        });
        group.appendChild(btn);
      });
      node.appendChild(group);
    }
    if (custom.type === "feedback_request" && Array.isArray(custom.ratings)) {
      node.appendChild(feedbackButtons(custom, msg.text));
    }
    var old = find(msg.id);
    if (old) { log.replaceChild(node, old); } else { log.appendChild(node); }
    if (custom.type === "feedback_thanks") { markRated(custom.rating); }
    scrollDown();
  }
  // 👍/👎 drawn as icons (an emoji font is not on every system)
  var THUMBS = {
    up: "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z",
    down: "M15 3H6c-.83 0-1.54.5-1.84 1.22l-3.02 7.05c-.09.23-.14.47-.14.73v2c0 1.1.9 2 2 2h6.31l-.95 4.57-.03.32c0 .41.17.79.44 1.06L9.83 23l6.59-6.59c.36-.36.58-.86.58-1.41V5c0-1.1-.9-2-2-2zm4 0v12h4V3h-4z"
  };
  /** A request for a rating (CSAT): one 👍/👎 button per rating, named for screen readers
   * by the domain's labels; a click sends the rating over this session's socket. */
  function feedbackButtons(custom, question) {
    var group = el("div", { class: "feedback", role: "group", "aria-label": question || "" });
    custom.ratings.forEach(function (r) {
      if (!THUMBS[r.rating]) { return; }
      var label = String(r.label || r.rating);
      var btn = el("button", {
        type: "button", class: "thumb", "data-rating": r.rating, "aria-label": label,
        title: label, "aria-pressed": "false"
      }, [svg(THUMBS[r.rating])]);
      btn.addEventListener("click", function () {
        if (btn.disabled) { return; }
        group.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
        btn.setAttribute("aria-pressed", "true");
        if (!frame({ type: "feedback", rating: r.rating })) { enableFeedback(); }
      });
      group.appendChild(btn);
    });
    if (custom.rated) { disableFeedback(group, custom.rated); }
    return group;
  }
  function disableFeedback(group, rating) {
    group.setAttribute("data-rated", rating);
    group.querySelectorAll("button").forEach(function (b) {
      b.disabled = true;
      b.setAttribute("aria-pressed", b.getAttribute("data-rating") === rating ? "true" : "false");
    });
  }
  /** The rating was recorded: every request's buttons are done, the chosen one pressed. */
  function markRated(rating) {
    log.querySelectorAll(".feedback").forEach(function (g) { disableFeedback(g, rating); });
  }
  /** A rating that did not get through (offline, busy): the shopper may press again. */
  function enableFeedback() {
    log.querySelectorAll(".feedback").forEach(function (g) {
      if (g.getAttribute("data-rated")) { return; }
      g.querySelectorAll("button").forEach(function (b) {
        b.disabled = false;
        b.setAttribute("aria-pressed", "false");
      });
    });
  }
  /** Quick replies answer the latest question only. */
  function retireQuickReplies() {
    log.querySelectorAll(".replies button").forEach(function (b) { b.disabled = true; });
  }
  function renderSystem(text) {
    log.appendChild(el("div", { class: "msg system" }, [el("div", { class: "bubble", text: text })]));
    scrollDown();
  }
  function renderStream(id, delta) {
    var node = find(id);
    if (!node) {
      node = el("div", { class: "msg bot streaming", "data-id": id }, [el("div", { class: "bubble" })]);
      log.appendChild(node);
    }
    node.querySelector(".bubble").appendChild(document.createTextNode(delta));
    scrollDown();
  }
  function renderHistory(history) {
    log.textContent = "";
    if (GREETING) {
      log.appendChild(el("div", { class: "msg bot greeting", "data-id": "greeting" }, [
        el("div", { class: "bubble", text: GREETING })]));
    }
    history.forEach(function (m) {
      if (m.type === "user") { retireQuickReplies(); renderUser(m.id, m.text, null); }
      else if (m.type === "bot") { renderBot(m); }
    });
    outbox.forEach(function (m) { retireQuickReplies(); renderUser(m.id, m.title || m.text, "pending"); });
    scrollDown();
  }

  // ------------------------------------------------------------------ connection
  function connect() {
    if (ws) { return; }
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    setStatus("connecting", t(attempts ? "reconnecting" : "connecting"));
    try { ws = new WebSocket(WS_URL); } catch (e) { ws = null; scheduleReconnect(); return; }
    ws.onopen = function () { frame({ type: "hello", session: session }); };
    ws.onmessage = function (event) {
      var msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      onFrame(msg);
    };
    ws.onclose = function () {
      ws = null;
      welcomed = false;
      inflight = null;
      clearInterval(pingTimer);
      clearTimeout(pongTimer);
      setTyping(false);
      outbox.forEach(function (m) { var n = find(m.id); if (n) { setPending(n, "queued"); } });
      setStatus("offline", t("offline"));
      scheduleReconnect();
    };
    ws.onerror = function () { /* onclose follows */ };
  }
  function scheduleReconnect() {
    if (reconnectTimer) { return; }
    var delay = Math.min(5000, 400 * Math.pow(2, attempts)) * (0.8 + Math.random() * 0.4);
    attempts += 1;
    reconnectTimer = setTimeout(function () { reconnectTimer = null; connect(); }, delay);
  }
  function reconnectNow() {
    if (ws) { return; }
    attempts = Math.min(attempts, 1);
    connect();
  }
  function frame(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(obj)); return true; }
    return false;
  }
  function startPing() {
    clearInterval(pingTimer);
    pingTimer = setInterval(function () {
      if (!frame({ type: "ping" })) { return; }
      clearTimeout(pongTimer);
      pongTimer = setTimeout(function () { if (ws) { ws.close(); } }, PONG_WAIT_MS);
    }, PING_EVERY_MS);
  }

  function onFrame(msg) {
    switch (msg.type) {
      case "welcome":
        session = msg.session;
        local.setItem(KEY + "session", session);
        welcomed = true;
        attempts = 0;
        setStatus("online", t("online"));
        renderHistory(msg.history || []);
        setTyping(!!msg.busy);
        startPing();
        flush();
        break;
      case "ack":
        if (outbox.length && outbox[0].id === msg.id) { outbox.shift(); saveOutbox(); }
        else { outbox = outbox.filter(function (m) { return m.id !== msg.id; }); saveOutbox(); }
        if (inflight === msg.id) { inflight = null; }
        var node = find(msg.id);
        if (node) { setPending(node, null); }
        flush();
        break;
      case "user":
        retireQuickReplies();
        renderUser(msg.id, msg.text, null);
        break;
      case "typing":
        setTyping(!!msg.on);
        break;
      case "stream":
        setTyping(false);
        renderStream(msg.id, msg.delta || "");
        break;
      case "stream_end":
        var streamed = find(msg.id);
        if (streamed) {
          if (msg.final) { streamed.setAttribute("data-id", msg.final); streamed.classList.remove("streaming"); }
          else { streamed.remove(); }
        }
        break;
      case "bot":
        renderBot(msg);
        break;
      case "error":
        onError(msg);
        break;
      case "pong":
        clearTimeout(pongTimer);
        break;
    }
  }
  function onError(msg) {
    if (msg.code === "rate_limited" && msg.id) {
      if (inflight === msg.id) { inflight = null; }
      var wait = Math.max(0.2, Number(msg.retry_after) || 1);
      holdUntil = Date.now() + wait * 1000;
      var node = find(msg.id);
      if (node) { setPending(node, "held"); }
      renderSystem(t("rate_limited", { seconds: Math.ceil(wait) }));
      clearTimeout(holdTimer);
      holdTimer = setTimeout(flush, wait * 1000 + 50);
    } else if (msg.code === "busy" || (msg.code === "rate_limited" && !msg.id)) {
      enableFeedback();  // only a rating is answered so without a message id
    } else if (msg.code === "feedback_refused") {
      enableFeedback();  // the rating was not recorded: the thumbs are not pressed
      renderSystem(t("feedback_refused"));
    } else if (msg.code === "turn_failed") {
      renderSystem(t("turn_failed"));
    } else if (msg.id) {
      // the server will never take this message as it is: do not retry it forever
      outbox = outbox.filter(function (m) { return m.id !== msg.id; });
      saveOutbox();
      if (inflight === msg.id) { inflight = null; }
      var failed = find(msg.id);
      if (failed) {
        setPending(failed, null);
        var meta = failed.querySelector(".meta");
        if (meta) { meta.hidden = false; meta.textContent = t("not_sent"); }
      }
      flush();
    }
  }

  /** Send the oldest unacknowledged message; the next goes when its ack arrives. */
  function flush() {
    if (!welcomed || inflight || !outbox.length || Date.now() < holdUntil) { return; }
    var head = outbox[0];
    var out = { type: "message", id: head.id, text: head.text };
    if (head.title) { out.title = head.title; }
    if (frame(out)) {
      inflight = head.id;
      var node = find(head.id);
      if (node) { setPending(node, "pending"); }
    }
  }
  function send(text, title) {
    text = String(text || "");
    if (!text.trim()) { return; }
    var item = { id: newId(), text: text.slice(0, MAX_CHARS) };
    if (title) { item.title = String(title); }
    outbox.push(item);
    saveOutbox();
    retireQuickReplies();
    renderUser(item.id, item.title || item.text, welcomed ? "pending" : "queued");
    if (welcomed) { flush(); } else { reconnectNow(); }
  }

  // ------------------------------------------------------------------ interaction
  function open() {
    panel.hidden = false;
    host.classList.add("open");
    launcher.setAttribute("aria-expanded", "true");
    perTab.setItem(KEY + "open", "1");
    connect();
    input.focus();
  }
  function close() {
    panel.hidden = true;
    host.classList.remove("open");
    launcher.setAttribute("aria-expanded", "false");
    perTab.removeItem(KEY + "open");
    launcher.focus();
  }
  launcher.addEventListener("click", open);
  closeBtn.addEventListener("click", close);
  panel.addEventListener("keydown", function (e) {
    if (e.key === "Escape") { e.preventDefault(); close(); }
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  input.addEventListener("input", function () {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 120) + "px";
  });
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value;
    if (!text.trim()) { return; }
    input.value = "";
    input.style.height = "auto";
    send(text);
  });
  window.addEventListener("online", reconnectNow);

  function mount() {
    document.body.appendChild(host);
    renderHistory([]);
    if (perTab.getItem(KEY + "open") === "1") { open(); }
    else if (outbox.length) { connect(); }
  }
  if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }
})();
