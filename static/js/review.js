/* The reviewer page: cart tagging, decisions, keyboard, lease, prefetch of the next clip.
 *
 * The common case (the tracker was right) is one key: A or Enter approves the cart as
 * shown and the next task (claimed "on deck" when this page opened, its clip fetched
 * in the background) opens at once. Every key also has a visible, labelled button.
 */
"use strict";

(function () {
  const page = JSON.parse(document.getElementById("page-data").textContent);
  const root = document.getElementById("review");
  const holder = root.dataset.holder === "1";
  const csrf = (document.querySelector("input[name=csrfmiddlewaretoken]") || {}).value || "";
  const money = new Intl.NumberFormat(undefined, { style: "currency", currency: page.currency || "USD" });
  const products = Object.fromEntries(page.products.map((p) => [p.sku, p]));
  const eventsByCode = Object.fromEntries(page.events.map((e) => [e.code, e]));
  const DEFAULT_REASON = { added: "missed_item", swapped: "wrong_product", removed: "phantom_item", qty: "wrong_quantity" };

  const cartEl = document.getElementById("cart");
  const totalEl = document.getElementById("total");
  const flashEl = document.getElementById("flash");
  const approveLabel = document.getElementById("approve-label");
  const picker = document.getElementById("picker");
  let busy = false;
  let leaving = false; // set when we navigate on purpose: no "left the page" beacon then
  let selected = 0;

  // ------------------------------------------------------------------ state
  const lines = page.lines.map((l) => ({
    ...l,
    origSku: l.sku,
    origQty: l.qty,
    reason: "",
    reasonSet: false,
    event: "",
    removed: false,
    confirmed: false,
  }));

  function change(line) {
    if (!line.origSku) return "added";
    if (line.removed || line.qty === 0) return "removed";
    if (line.sku !== line.origSku) return "swapped";
    if (line.qty !== line.origQty) return "qty";
    return "";
  }

  function touch(line) {
    const kind = change(line);
    if (!kind) {
      line.reason = "";
      line.reasonSet = false;
    } else if (!line.reasonSet) {
      line.reason = DEFAULT_REASON[kind];
    }
  }

  function payload() {
    const final = [];
    const removed = {};
    for (const line of lines) {
      const kind = change(line);
      if (kind !== "removed") final.push({ sku: line.sku, qty: line.qty, reason: kind ? line.reason : "", event: line.event });
      if (line.origSku && (kind === "removed" || kind === "swapped")) removed[line.origSku] = line.reason;
    }
    // a proposed sku still present elsewhere (swapped onto an existing line) is not removed
    for (const item of final) delete removed[item.sku];
    return { lines: JSON.stringify(final), removed: JSON.stringify(removed), changes: lines.filter((l) => change(l)).length };
  }

  // ------------------------------------------------------------------ rendering
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) if (c != null) node.append(c);
    return node;
  }

  function render() {
    cartEl.textContent = "";
    if (!lines.length) cartEl.append(el("li", { class: "muted empty" }, "The tracker proposes an empty cart."));
    lines.forEach((line, i) => {
      const kind = change(line);
      const product = products[line.sku] || { name: line.sku, image: "" };
      const was = kind === "swapped" ? (products[line.origSku] || {}).name : "";
      const conf = line.origSku ? line.confidence : null;
      const li = el(
        "li",
        {
          class: ["line", line.doubt && !line.confirmed ? "doubt" : "", kind ? "changed" : "", kind === "removed" ? "removed" : "", line.confirmed ? "confirmed" : "", i === selected ? "selected" : ""].join(" "),
          tabindex: "-1",
          "data-i": i,
          "data-sku": line.sku,
          "aria-label": `${line.qty} × ${product.name}${kind ? ", changed" : ""}`,
          onclick: (ev) => {
            if (ev.target.closest("button, select, input")) return;
            select(i);
          },
        },
        product.image ? el("img", { src: product.image, alt: "", class: "thumb", width: 56, height: 56 }) : el("span", { class: "thumb none" }),
        el(
          "div",
          { class: "what" },
          el("div", { class: "name" }, product.name),
          el(
            "div",
            { class: "sub" },
            line.sku,
            was ? el("span", { class: "was" }, ` · was ${was}`) : null,
            conf != null ? el("span", { class: "conf conf-" + (conf < 0.6 ? "low" : conf < 0.85 ? "mid" : "high"), title: "Tracker confidence" }, ` ${Math.round(conf * 100)}%`) : el("span", { class: "conf added" }, " added"),
            line.doubt && !line.confirmed && !kind ? el("span", { class: "flag" }, " ⚠ check") : null,
            line.confirmed && !kind ? el("span", { class: "ok" }, " ✓ confirmed") : null
          ),
          el(
            "div",
            { class: "evs" },
            (line.events || []).map((code) => {
              const e = eventsByCode[code];
              return e
                ? el("button", { type: "button", class: "ev-chip conf-" + (e.confidence < 0.6 ? "low" : e.confidence < 0.85 ? "mid" : "high"), "data-event": code, title: `Jump to event #${e.n}`, onclick: () => player && player.seekEvent(e) }, `#${e.n} ${e.kind}`)
                : null;
            }),
            line.event && eventsByCode[line.event] ? el("span", { class: "tied" }, `tied to #${eventsByCode[line.event].n}`) : null
          ),
          kind
            ? el(
                "label",
                { class: "reason" },
                "Reason ",
                el(
                  "select",
                  {
                    "data-reason": i,
                    onchange: (ev) => {
                      line.reason = ev.target.value;
                      line.reasonSet = true;
                    },
                  },
                  Object.entries(page.reasons).map(([code, label]) => el("option", { value: code, selected: code === line.reason }, label))
                )
              )
            : null
        ),
        el(
          "div",
          { class: "qtybox" },
          el("button", { type: "button", class: "qbtn", "aria-label": `One less ${product.name}`, title: "One less (-)", onclick: () => qty(i, -1) }, "−"),
          el("output", { class: "qty", "aria-label": "Quantity" }, String(kind === "removed" ? 0 : line.qty)),
          el("button", { type: "button", class: "qbtn", "aria-label": `One more ${product.name}`, title: "One more (+)", onclick: () => qty(i, 1) }, "+")
        ),
        el("div", { class: "price" }, money.format(((kind === "removed" ? 0 : line.qty) * line.unit_price) / 100)),
        el(
          "div",
          { class: "acts" },
          el("button", { type: "button", title: "Confirm this line (C)", "aria-label": `Confirm ${product.name}`, onclick: () => confirmLine(i) }, "✓"),
          el("button", { type: "button", title: "Swap product (S)", "aria-label": `Swap ${product.name}`, onclick: () => swap(i) }, "Swap"),
          el("button", { type: "button", title: kind === "removed" ? "Restore (Del)" : "Remove (Del)", "aria-label": `${kind === "removed" ? "Restore" : "Remove"} ${product.name}`, onclick: () => remove(i) }, kind === "removed" ? "Undo" : "✕")
        )
      );
      cartEl.append(li);
    });
    const total = lines.reduce((sum, l) => sum + (change(l) === "removed" ? 0 : l.qty * l.unit_price), 0);
    totalEl.textContent = money.format(total / 100);
    const n = payload().changes;
    if (approveLabel) approveLabel.textContent = n ? `Approve with ${n} change${n > 1 ? "s" : ""}` : "Approve cart";
    markCurrentEvent();
  }

  function lineEl(i) {
    return cartEl.querySelector(`.line[data-i="${i}"]`);
  }

  function select(i, focus = true) {
    if (!lines.length) return;
    selected = Math.max(0, Math.min(lines.length - 1, i));
    cartEl.querySelectorAll(".line").forEach((n) => n.classList.toggle("selected", Number(n.dataset.i) === selected));
    const node = lineEl(selected);
    if (node && focus) node.focus({ preventScroll: false });
  }

  function refresh(i = selected) {
    render();
    select(i);
  }

  // ------------------------------------------------------------------ cart actions
  function qty(i, delta) {
    const line = lines[i];
    if (!line) return;
    if (line.removed) line.removed = false;
    line.qty = Math.max(0, Math.min(99, line.qty + delta));
    touch(line);
    refresh(i);
  }

  function remove(i) {
    const line = lines[i];
    if (!line) return;
    if (!line.origSku) {
      lines.splice(i, 1); // an added line simply goes away
      return refresh(Math.min(i, lines.length - 1));
    }
    line.removed = !line.removed;
    if (!line.removed && line.qty === 0) line.qty = line.origQty;
    touch(line);
    refresh(i);
  }

  function confirmLine(i) {
    const line = lines[i];
    if (!line) return;
    line.confirmed = true;
    refresh(i);
    select(i + 1);
  }

  function swap(i) {
    const line = lines[i];
    if (!line) return;
    openPicker({
      title: `Swap ${products[line.sku] ? products[line.sku].name : line.sku} for…`,
      suggest: page.lookalikes[line.sku] || [],
      exclude: line.sku,
      onPick: (sku) => {
        line.sku = sku;
        line.unit_price = products[sku].price;
        line.removed = false;
        if (line.qty === 0) line.qty = line.origQty || 1;
        touch(line);
        refresh(i);
      },
    });
  }

  function addLine() {
    const ev = player ? player.current() : null;
    // a line is added for something the cart lacks: what it already holds goes last (+ adds one more)
    const held = new Set(lines.filter((l) => change(l) !== "removed").map((l) => l.sku));
    const alike = ev && ev.sku ? [ev.sku, ...(page.lookalikes[ev.sku] || [])] : [];
    const suggest = [...alike.filter((sku) => !held.has(sku)), ...alike.filter((sku) => held.has(sku))];
    openPicker({
      title: "Add a line",
      suggest,
      withEvent: ev ? ev.code : page.events.length ? page.events[0].code : "",
      onPick: (sku, eventCode) => {
        const existing = lines.findIndex((l) => l.sku === sku && change(l) !== "removed");
        if (existing >= 0) {
          lines[existing].qty += 1;
          lines[existing].event = lines[existing].event || eventCode;
          touch(lines[existing]);
          return refresh(existing);
        }
        const p = products[sku];
        lines.push({ sku, name: p.name, qty: 1, unit_price: p.price, confidence: null, image: p.image, events: eventCode ? [eventCode] : [], doubt: false, origSku: "", origQty: 0, reason: "", reasonSet: false, event: eventCode, removed: false, confirmed: false });
        touch(lines[lines.length - 1]);
        refresh(lines.length - 1);
      },
    });
  }

  // ------------------------------------------------------------------ product picker
  const search = document.getElementById("picker-search");
  const list = document.getElementById("picker-list");
  const eventRow = document.getElementById("picker-event-row");
  const eventSel = document.getElementById("picker-event");
  let pick = null;

  function openPicker(opts) {
    pick = { ...opts, items: [], active: 0 };
    document.getElementById("picker-title").textContent = opts.title;
    search.value = "";
    eventRow.hidden = !("withEvent" in opts);
    if (!eventRow.hidden) {
      eventSel.textContent = "";
      eventSel.append(el("option", { value: "" }, "(no event)"));
      for (const e of page.events) eventSel.append(el("option", { value: e.code, selected: e.code === opts.withEvent }, `#${e.n} ${e.kind} ${e.qty}× ${e.name} at ${e.t_start.toFixed(1)} s`));
    }
    fillPicker();
    picker.showModal();
    search.focus();
  }

  function fillPicker() {
    const q = search.value.trim().toLowerCase();
    const match = (p) => !q || p.name.toLowerCase().includes(q) || p.sku.toLowerCase().includes(q);
    const seen = new Set([pick.exclude]);
    const suggested = [];
    for (const sku of pick.suggest) {
      if (!seen.has(sku) && products[sku] && match(products[sku])) suggested.push(products[sku]);
      seen.add(sku);
    }
    const rest = page.products.filter((p) => !seen.has(p.sku) && match(p));
    pick.items = [...suggested, ...rest];
    pick.active = Math.min(pick.active, Math.max(0, pick.items.length - 1));
    list.textContent = "";
    const item = (p, i) =>
      el(
        "li",
        { role: "option", id: `pick-${i}`, "data-sku": p.sku, "aria-selected": String(i === pick.active), class: i === pick.active ? "active" : "", onclick: () => choose(i), onmousemove: () => highlight(i) },
        p.image ? el("img", { src: p.image, alt: "", width: 48, height: 48 }) : el("span", { class: "thumb none" }),
        el("span", { class: "pname" }, p.name),
        el("span", { class: "psku" }, p.sku),
        el("span", { class: "pprice" }, money.format(p.price / 100))
      );
    if (suggested.length) list.append(el("li", { class: "group", role: "presentation" }, "Looks most alike"));
    suggested.forEach((p, i) => list.append(item(p, i)));
    if (rest.length) list.append(el("li", { class: "group", role: "presentation" }, q ? "Matches" : "All products"));
    rest.forEach((p, i) => list.append(item(p, suggested.length + i)));
    if (!pick.items.length) list.append(el("li", { class: "group", role: "presentation" }, "No product matches."));
    search.setAttribute("aria-activedescendant", pick.items.length ? `pick-${pick.active}` : "");
  }

  function highlight(i) {
    if (!pick.items.length) return;
    pick.active = (i + pick.items.length) % pick.items.length;
    list.querySelectorAll("[role=option]").forEach((n) => {
      const on = n.id === `pick-${pick.active}`;
      n.classList.toggle("active", on);
      n.setAttribute("aria-selected", String(on));
      if (on) n.scrollIntoView({ block: "nearest" });
    });
    search.setAttribute("aria-activedescendant", `pick-${pick.active}`);
  }

  function choose(i) {
    const p = pick.items[i];
    if (!p) return;
    const done = pick.onPick;
    const eventCode = eventRow.hidden ? "" : eventSel.value;
    picker.close();
    done(p.sku, eventCode);
  }

  search.addEventListener("input", () => {
    pick.active = 0;
    fillPicker();
  });
  search.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      highlight(pick.active + (ev.key === "ArrowDown" ? 1 : -1));
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      choose(pick.active);
    }
  });
  picker.addEventListener("close", () => select(selected));

  // ------------------------------------------------------------------ decisions
  function flash(message, kind = "error") {
    flashEl.textContent = message;
    flashEl.className = "flash " + kind;
    flashEl.hidden = false;
  }

  function go(url, message) {
    leaving = true;
    if (message) sessionStorage.setItem("review-flash", message);
    location.assign(url);
  }

  function setBusy(on) {
    busy = on;
    root.classList.toggle("busy", on);
    document.querySelectorAll(".outcomes button, dialog button[type=submit]").forEach((b) => (b.disabled = on));
  }

  async function post(form, fields) {
    if (busy) return;
    setBusy(true);
    const body = new FormData(form);
    for (const [k, v] of Object.entries(fields || {})) body.set(k, v);
    body.set("time_spent_ms", String(Math.round(performance.now())));
    let res, data;
    try {
      res = await fetch(form.action, { method: "POST", body, headers: { Accept: "application/json", "X-CSRFToken": csrf }, credentials: "same-origin" });
      data = await res.json();
    } catch (err) {
      setBusy(false);
      return flash("The server did not answer; nothing was saved. Try again.");
    }
    if (res.ok) return go(data.next, data.message);
    if (data.next) return go(data.next, `Not saved. ${data.error} Here is your next task.`); // expired, not yours, decided
    setBusy(false);
    flash(data.error || "That did not work.");
  }

  function approve() {
    if (!holder || busy) return;
    const p = payload();
    post(document.getElementById("approve-form"), { lines: p.lines, removed: p.removed });
  }

  const escDialog = document.getElementById("escalate-dialog");
  const skipDialog = document.getElementById("skip-dialog");
  const helpDialog = document.getElementById("help");

  function openDialog(d, focus) {
    if (!d || d.open) return;
    d.showModal();
    if (focus) focus.focus();
  }

  if (holder) {
    document.getElementById("approve-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      approve();
    });
    const escBtn = document.getElementById("escalate-btn");
    if (escBtn) escBtn.addEventListener("click", () => openDialog(escDialog, document.getElementById("esc-note")));
    document.getElementById("skip-btn").addEventListener("click", () => openDialog(skipDialog, skipDialog.querySelector("input[name=reason]:checked")));
    document.getElementById("escalate-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (!document.getElementById("esc-note").value.trim()) return flash("Write a short note for the supervisor.");
      post(ev.target);
    });
    document.getElementById("esc-note").addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey) {
        ev.preventDefault();
        document.getElementById("escalate-form").requestSubmit();
      }
    });
    document.getElementById("skip-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      post(ev.target);
    });
    skipDialog.addEventListener("keydown", (ev) => {
      const radios = skipDialog.querySelectorAll("input[name=reason]");
      const n = Number(ev.key);
      const inText = ev.target.tagName === "INPUT" && ev.target.type !== "radio";
      if (n >= 1 && n <= radios.length && !inText) {
        radios[n - 1].checked = true;
        radios[n - 1].focus();
        ev.preventDefault();
      }
    });
    const voidForm = document.getElementById("void-form");
    if (voidForm)
      voidForm.addEventListener("submit", (ev) => {
        ev.preventDefault();
        post(ev.target);
      });
  }
  document.querySelectorAll("dialog [data-close]").forEach((b) => b.addEventListener("click", () => b.closest("dialog").close()));
  document.getElementById("help-btn").addEventListener("click", () => openDialog(helpDialog));
  document.getElementById("add-line").addEventListener("click", addLine);

  // ------------------------------------------------------------------ keyboard
  function typing(target) {
    return target.closest && target.closest("input, textarea, select, [contenteditable]");
  }

  // a button clicked with the mouse (Play, a crop, +) lets go of the focus, so that Enter then
  // approves as everywhere else on the page rather than pressing that button again; a button
  // reached with Tab keeps it (Enter presses it, as a keyboard user expects)
  document.addEventListener("click", (ev) => {
    const b = ev.target.closest && ev.target.closest("button");
    if (b && ev.detail > 0 && !b.closest("dialog")) b.blur();
  });

  const REPEATS = new Set([",", ".", "j", "J", "k", "K"]);
  const APPROVE_KEYS = new Set(["a", "A", "Enter"]);
  const ARM_MS = 350;
  let shownAt = performance.now();
  window.addEventListener("pageshow", () => (shownAt = performance.now()));

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (document.querySelector("dialog[open]")) return; // dialogs handle their own keys (Esc closes)
    if (typing(ev.target)) {
      if (ev.key === "Escape") ev.target.blur();
      return;
    }
    const onButton = ev.target.closest && ev.target.closest("button, a");
    const k = ev.key;
    // a key held down repeats: held a moment too long, the Enter that approved this cart would
    // approve the next one unseen. Only stepping through frames and lines may repeat. Nor does
    // approving count in the first moment a task is on screen (a double press).
    if (ev.repeat && !REPEATS.has(k)) {
      ev.preventDefault();
      return;
    }
    if (APPROVE_KEYS.has(k) && performance.now() - shownAt < ARM_MS) {
      ev.preventDefault();
      return;
    }
    const act = {
      a: approve,
      A: approve,
      Enter: onButton ? null : approve,
      " ": onButton ? null : () => player && player.togglePlay(),
      ",": () => player && player.step(-1),
      ".": () => player && player.step(1),
      "<": () => player && player.faster(-1),
      ">": () => player && player.faster(1),
      "[": () => player && player.prevEvent(),
      "]": () => player && player.nextEvent(),
      "{": () => player && player.prevClip(),
      "}": () => player && player.nextClip(),
      l: () => player && player.toggleLoop(),
      L: () => player && player.toggleLoop(),
      j: () => select(selected + 1),
      J: () => select(selected + 1),
      k: () => select(selected - 1),
      K: () => select(selected - 1),
      c: () => confirmLine(selected),
      C: () => confirmLine(selected),
      "+": () => qty(selected, 1),
      "=": () => qty(selected, 1),
      "-": () => qty(selected, -1),
      _: () => qty(selected, -1),
      s: () => swap(selected),
      S: () => swap(selected),
      n: addLine,
      N: addLine,
      Delete: () => remove(selected),
      Backspace: () => remove(selected),
      r: focusReason,
      R: focusReason,
      // an escalation has no Escalate button (a supervisor decides it): the key does nothing there either
      e: () => holder && document.getElementById("escalate-btn") && openDialog(escDialog, document.getElementById("esc-note")),
      E: () => holder && document.getElementById("escalate-btn") && openDialog(escDialog, document.getElementById("esc-note")),
      x: () => holder && openDialog(skipDialog, skipDialog.querySelector("input[name=reason]:checked")),
      X: () => holder && openDialog(skipDialog, skipDialog.querySelector("input[name=reason]:checked")),
      z: toggleCompare,
      Z: toggleCompare,
      "?": () => openDialog(helpDialog),
    }[k];
    if (!act) return;
    ev.preventDefault();
    act();
  });

  function focusReason() {
    const sel = cartEl.querySelector(`select[data-reason="${selected}"]`);
    if (sel) sel.focus();
  }

  // ------------------------------------------------------------------ player, crops
  const video = document.getElementById("video");
  const before = document.getElementById("crop-before");
  const after = document.getElementById("crop-after");
  const caption = document.getElementById("event-caption");

  // the slot crops are small beside the clip: Z (or a click on one) shows them large in its place
  const stage = document.querySelector(".stage");
  function toggleCompare() {
    if (stage) stage.classList.toggle("compare");
  }
  [before, after].forEach((img) => img && img.addEventListener("click", toggleCompare));

  function showCrop(img, url) {
    img.hidden = !url;
    img.nextElementSibling.hidden = !!url;
    if (url) img.src = url;
  }

  function markCurrentEvent() {
    const cur = player ? player.current() : null;
    document.querySelectorAll("[data-event]").forEach((n) => n.classList.toggle("current", !!cur && n.dataset.event === cur.code));
  }

  function onEvent(e) {
    showCrop(before, e ? e.before : "");
    showCrop(after, e ? e.after : "");
    caption.textContent = e ? `#${e.n} ${e.kind} ${e.qty}× ${e.name} · slot ${e.slot || "?"} · ${e.t_start.toFixed(1)}–${e.t_end.toFixed(1)} s · confidence ${e.confidence.toFixed(2)}${e.ambiguous ? " · ambiguous" : ""}` : "No event selected";
    markCurrentEvent();
  }

  const player = video ? window.ClipPlayer({ video, clips: page.clips, events: page.events, fps: page.fps, onEvent }) : null;
  window.reviewPage = { player, lines, payload };

  // ------------------------------------------------------------------ lease, leave, prefetch
  const timer = document.getElementById("timer");
  setInterval(() => {
    const s = Math.floor(performance.now() / 1000);
    timer.textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }, 1000);

  if (holder) {
    const lease = document.getElementById("lease");
    setInterval(async () => {
      const body = new FormData();
      body.set("csrfmiddlewaretoken", csrf);
      body.set("on_deck", page.on_deck);
      try {
        const res = await fetch(page.urls.renew, { method: "POST", body, headers: { Accept: "application/json" }, credentials: "same-origin" });
        const data = await res.json();
        if (res.ok) lease.textContent = "held";
        else if (data.next) go(data.next, `${data.error} Here is your next task.`);
      } catch (err) {
        lease.textContent = "offline?";
      }
    }, 60000);

    window.addEventListener("pagehide", () => {
      if (leaving) return;
      const body = new FormData();
      body.set("csrfmiddlewaretoken", csrf);
      body.set("on_deck", page.on_deck);
      navigator.sendBeacon(page.urls.leave, body);
    });
  }

  function prefetchNext() {
    const next = document.getElementById("prefetch");
    if (!next || prefetchNext.done) return;
    prefetchNext.done = true;
    // the whole file into the HTTP cache; the next page's <video> range requests are served from it
    // (logged as a prefetch, not a view: the view is logged when that task's page opens)
    fetch(next.dataset.url, { credentials: "same-origin", headers: { "X-Prefetch": "1" } })
      .then((r) => r.arrayBuffer())
      .then(() => (root.dataset.prefetched = "1"))
      .catch(() => {});
    if (next.dataset.poster) new Image().src = next.dataset.poster;
  }
  if (video && video.readyState < 4) {
    video.addEventListener("canplaythrough", prefetchNext, { once: true });
    setTimeout(prefetchNext, 2000);
  } else {
    prefetchNext();
  }

  // ------------------------------------------------------------------ start
  const carried = sessionStorage.getItem("review-flash");
  if (carried) {
    sessionStorage.removeItem("review-flash");
    const bad = /next task\.$/.test(carried);
    flash(carried, bad ? "error" : "ok");
    setTimeout(() => (flashEl.hidden = true), bad ? 8000 : 1500);
  }
  render();
  if (lines.length) select(0, false);
  if (player && page.events.length) player.seekEvent(page.events.slice().sort((a, b) => a.confidence - b.confidence)[0]);
  root.dataset.ready = "1";
})();
