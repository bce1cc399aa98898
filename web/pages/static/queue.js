/* The seniors' queue: live cards, Claim, tab counts, catching up after a dropped
   connection, wait colours, and the keyboard. Alerts (title, favicon, notifications, sound,
   announcements) live in alerts.js. */
"use strict";

(function () {
  const EM = window.EscalationMode;
  const queue = document.getElementById("queue");
  const empty = document.getElementById("queue-empty");
  const problem = document.getElementById("queue-error");
  const me = Number(document.body.dataset.userId);
  const view = queue.dataset;
  // What the server decides and this script only applies (web/pages/present.py
  // queue_config): what this viewer may do on a handoff in each status, the words of a card
  // that stopped being open, and each priority's wait colours (seconds to amber and to red,
  // from the priority's unclaimed policy). A card's labels come in its handoff summary.
  const config = JSON.parse(view.config);
  const MAY = config.may || {};
  const TAKEN_TEXTS = config.taken_texts || {};
  const WAIT_SECONDS = config.wait_seconds || {};
  // A card someone else took stays (greyed, saying who) this long before it goes.
  const TAKEN_CARD_LINGER_MS = 30000;
  const MAX_QUEUE_PAGES = 10;

  function cardFor(id) {
    return queue.querySelector('li.card[data-handoff-id="' + Number(id) + '"]');
  }

  function cards() {
    return Array.from(queue.querySelectorAll(":scope > li.card"));
  }

  function updateEmpty() {
    empty.hidden = queue.children.length > 0;
  }

  function showProblem(message) {
    problem.textContent = message || "";
    problem.hidden = !message;
  }

  /* The query string of the page's filters, for the API. */
  function filterQuery() {
    const params = new URLSearchParams();
    if (view.priority) params.set("priority", view.priority);
    if (view.customer) params.set("customer", view.customer);
    if (view.technician) params.set("escalated_by", view.technician);
    if (view.q) params.set("q", view.q);
    return params;
  }

  /* Does a summary belong on this page's Unclaimed view? (The server applies the same
     filters to the first render and to catch-up.) */
  function matchesFilters(handoff) {
    if (view.priority && handoff.priority !== view.priority) return false;
    if (view.customer && (handoff.customer || "").toLowerCase() !== view.customer.toLowerCase()) return false;
    if (view.technician && (!handoff.escalated_by || String(handoff.escalated_by.id) !== view.technician)) return false;
    if (view.q && (handoff.title || "").toLowerCase().indexOf(view.q.toLowerCase()) < 0) return false;
    return true;
  }

  function confidenceText(value) {
    return typeof value === "number" && Number.isFinite(value) ? Math.round(value * 100) + "% confident" : "";
  }

  /* What this viewer may do on a handoff in `status` (nothing for a status not listed). */
  function mayOn(status) {
    return MAY[status] || {};
  }

  /* Fills a clone of the card macro's <template> from a handoff summary, as
     web/pages/present.py handoff_card does for the server-rendered cards. */
  function applyHandoff(card, handoff) {
    const titleId = "handoff-" + handoff.id + "-title";
    const priority = handoff.priority || "p3";
    const may = mayOn(handoff.status);
    card.dataset.handoffId = handoff.id;
    card.dataset.sessionId = handoff.session_id;
    card.dataset.status = handoff.status;
    card.dataset.priority = priority;
    card.dataset.created = handoff.created_at;
    card.querySelector("article").setAttribute("aria-labelledby", titleId);
    card.querySelector(".card-title").id = titleId;
    const claimButton = card.querySelector('[data-action="claim"]');
    claimButton.setAttribute("aria-describedby", titleId);
    claimButton.hidden = may.claim !== true;
    const sessionLink = card.querySelector('[data-part="session-link"]');
    sessionLink.setAttribute("aria-describedby", titleId);
    sessionLink.href = "/pilot/" + Number(handoff.session_id);
    sessionLink.hidden = may.claim === true;
    const waiting = card.querySelector('[data-field="waiting"]');
    waiting.dataset.since = handoff.created_at;
    waiting.setAttribute("datetime", handoff.created_at);
    card.querySelector('[data-part="customer"]').hidden = !handoff.customer;
    card.querySelector('[data-part="psa"]').hidden = !handoff.psa_ticket_id;
    const steps = Array.isArray(handoff.steps_tried) ? handoff.steps_tried : [];
    const list = card.querySelector('[data-list="steps"]');
    list.replaceChildren.apply(list, steps.map(function (step) {
      const item = document.createElement("li");
      item.textContent = String(step);
      return item;
    }));
    card.querySelector('[data-part="steps"]').hidden = steps.length === 0;
    EM.fill(card, {
      title: handoff.title,
      priority_label: handoff.priority_label || "",
      customer: handoff.customer || "",
      psa_ticket: handoff.psa_ticket_id || "",
      technician: handoff.escalated_by ? handoff.escalated_by.name : "",
      reason: handoff.reason,
      gist: handoff.ai_summary || "No assessment",
      confidence: confidenceText(handoff.ai_confidence),
      waiting: EM.waitingText(handoff.created_at),
    });
  }

  /* Where a card goes under the page's sort (the server's order): by priority then the
     longest waiting, else by creation time; the id breaks ties. */
  function comesBefore(a, b) {
    if (view.sort === "priority" && a.dataset.priority !== b.dataset.priority) {
      return a.dataset.priority < b.dataset.priority;
    }
    const atA = Date.parse(a.dataset.created);
    const atB = Date.parse(b.dataset.created);
    const idA = Number(a.dataset.handoffId);
    const idB = Number(b.dataset.handoffId);
    const older = atA < atB || (atA === atB && idA < idB);
    return view.sort === "newest" ? !older : older;
  }

  function insertInOrder(card) {
    for (const other of cards()) {
      if (comesBefore(card, other)) {
        queue.insertBefore(card, other);
        return;
      }
    }
    queue.appendChild(card);
  }

  /* The unclaimed steps taken so far: "reminded twice · owner told". */
  const TIMES = ["", "once", "twice"];
  function stepsText(handoff) {
    const parts = [];
    const reminders = Number(handoff.reminders_sent) || 0;
    if (reminders) parts.push("reminded " + (TIMES[reminders] || reminders + " times"));
    if (handoff.escalated_to_admins_at) parts.push("owner told");
    return parts.join(" · ");
  }

  function showSteps(card, handoff) {
    let line = card.querySelector('[data-field="steps"]');
    if (!line) {
      line = document.createElement("p");
      line.className = "card-steps";
      line.dataset.field = "steps";
      card.querySelector(".card-wait").after(line);
    }
    line.textContent = stepsText(handoff);
    line.hidden = !line.textContent;
  }

  function stepTaken(payload) {
    const handoff = EM.handoffOf(payload);
    if (handoff && handoff.status === "open" && liveUnclaimed && matchesFilters(handoff)) {
      addOpen(handoff);
    }
  }

  function addOpen(handoff) {
    const existing = cardFor(handoff.id);
    if (existing) {
      showSteps(existing, handoff);
      return;
    }
    const card = EM.cloneTemplate("card-template");
    applyHandoff(card, handoff);
    showSteps(card, handoff);
    insertInOrder(card);
    card.classList.add("is-new");
    paintWaits(Date.now());
    updateEmpty();
  }

  function scheduleRemoval(card) {
    if (card.dataset.leaving) return;
    card.dataset.leaving = "1";
    window.setTimeout(function () {
      card.remove();
      updateEmpty();
    }, TAKEN_CARD_LINGER_MS);
  }

  /* A handoff that is no longer open: gone if this senior took it, else greyed out saying
     who did (the 409 message when a claim lost the race). */
  function markTaken(handoff, message) {
    const card = cardFor(handoff.id);
    if (!card) return;
    if (handoff.claimed_by && handoff.claimed_by.id === me && !message) {
      card.remove();
      updateEmpty();
      return;
    }
    card.dataset.status = handoff.status || "claimed";
    card.classList.add("is-taken");
    const button = card.querySelector('[data-action="claim"]');
    if (button) {
      button.disabled = true;
      button.textContent = "Claim";
    }
    let text = message;
    if (!text) {
      if (handoff.claimed_by) {
        const name = String(handoff.claimed_by.name || "");
        text = (TAKEN_TEXTS.claimed_by || "").replace("{name}", function () { return name; });
      } else {
        text = TAKEN_TEXTS[handoff.status] || TAKEN_TEXTS.claimed || "";
      }
    }
    EM.fill(card, { status: text });
    scheduleRemoval(card);
  }

  async function claim(card) {
    const button = card && card.querySelector('[data-action="claim"]');
    if (!button || button.hidden || button.disabled) return;
    const id = Number(card.dataset.handoffId);
    button.disabled = true;
    button.textContent = "Claiming…";
    card.dataset.claiming = "1";
    EM.fill(card, { status: "" });
    const result = await EM.api("POST", "/api/v1/escalations/" + id + "/claim");
    delete card.dataset.claiming;
    const target = result.ok && result.data ? result.data.redirect_url : null;
    if (typeof target === "string" && target.startsWith("/") && !target.startsWith("//")) {
      window.location.assign(target);
      return;
    }
    if (result.status === 409) {
      const details = (result.data && result.data.error && result.data.error.details) || {};
      markTaken({ id: id, status: "claimed", claimed_by: details.claimed_by || null }, result.message);
      return;
    }
    button.disabled = false;
    button.textContent = "Claim";
    EM.fill(card, { status: result.message || "Could not claim it. Try again." });
  }

  queue.addEventListener("click", function (event) {
    const button = event.target.closest('[data-action="claim"]');
    if (button) claim(button.closest("li.card"));
  });

  /* --- handed to the viewer: who did, and why (the timeline has the reason) ---------- */

  const handed = document.getElementById("handed-to-you");

  async function handedToMe(handoff) {
    const result = await EM.api("GET", "/api/v1/escalations/" + Number(handoff.id) + "/timeline");
    const items = result.ok ? result.data.items : [];
    const change = items.filter(function (item) { return item.kind === "reassigned"; }).pop();
    const who = change && change.actor ? change.actor.name : "A senior";
    const why = change && change.details && change.details.reason ? change.details.reason : "";
    const headline = who + " handed you “" + handoff.title + "”" + (why ? ":" : ".");
    EM.fill(handed, { headline: headline, why: why });
    handed.querySelector("[data-field-href]").href = "/pilot/" + Number(handoff.session_id);
    handed.hidden = false;
    if (window.QueueAlerts) window.QueueAlerts.handedOver(handoff, headline + (why ? " " + why : ""));
  }

  handed.querySelector('[data-action="dismiss-handed"]').addEventListener("click", function () {
    handed.hidden = true;
  });

  /* --- tab counts ------------------------------------------------------------------- */

  let countsTimer = null;

  async function refreshCounts() {
    const query = filterQuery().toString();
    const result = await EM.api("GET", "/api/v1/escalations/counts" + (query ? "?" + query : ""));
    if (!result.ok) return;
    Object.keys(result.data).forEach(function (tab) {
      document.querySelectorAll('[data-count="' + tab + '"]').forEach(function (element) {
        element.textContent = String(result.data[tab]);
      });
    });
  }

  function countsSoon() {
    window.clearTimeout(countsTimer);
    countsTimer = window.setTimeout(refreshCounts, 300);
  }

  /* --- live ------------------------------------------------------------------------- */

  const liveUnclaimed = view.tab === "unclaimed" && view.paged !== "yes";

  /* After every (re)connect on the Unclaimed view: fetch it, add what was missed, and
     settle cards whose handoff stopped being open while we were not listening. */
  async function catchUp() {
    countsSoon();
    if (!liveUnclaimed) return;
    const open = [];
    let cursor = null;
    for (let page = 0; page < MAX_QUEUE_PAGES; page += 1) {
      const params = filterQuery();
      params.set("status", "open");
      params.set("sort", view.sort === "oldest" ? "oldest" : "priority");
      params.set("limit", "200");
      if (cursor) params.set("cursor", cursor);
      const result = await EM.api("GET", "/api/v1/escalations?" + params.toString());
      if (!result.ok) {
        showProblem("Could not refresh the queue: " + result.message);
        return;
      }
      open.push.apply(open, result.data.items);
      cursor = result.data.next_cursor;
      if (!cursor) break;
    }
    showProblem("");
    const openIds = new Set(open.map(function (handoff) { return handoff.id; }));
    open.forEach(function (handoff) {
      if (!cardFor(handoff.id) && window.QueueAlerts) window.QueueAlerts.arrived(handoff);
      addOpen(handoff);
    });
    for (const card of cards()) {
      const id = Number(card.dataset.handoffId);
      if (card.dataset.status !== "open" || openIds.has(id) || card.dataset.claiming) continue;
      const latest = await EM.api("GET", "/api/v1/escalations/" + id);
      if (latest.ok) markTaken(latest.data);
      else {
        card.remove();
        updateEmpty();
      }
    }
  }

  function settled(payload) {
    const handoff = EM.handoffOf(payload);
    countsSoon();
    if (handoff && liveUnclaimed) markTaken(handoff);
  }

  EM.connectLive(
    {
      "handoff.created": function (payload) {
        const handoff = EM.handoffOf(payload);
        countsSoon();
        if (!handoff || handoff.status !== "open") return;
        if (window.QueueAlerts && !cardFor(handoff.id)) window.QueueAlerts.arrived(handoff);
        if (liveUnclaimed && matchesFilters(handoff)) addOpen(handoff);
      },
      "handoff.claimed": settled,
      "handoff.released": function (payload) {
        // Open again: back on Unclaimed, as if it had just arrived.
        const handoff = EM.handoffOf(payload);
        countsSoon();
        if (!handoff || !liveUnclaimed || !matchesFilters(handoff)) return;
        const stale = cardFor(handoff.id);
        if (stale) stale.remove();
        addOpen(handoff);
      },
      "handoff.reassigned": function (payload) {
        const handoff = EM.handoffOf(payload);
        if (handoff) markTaken(handoff);
        if (handoff && handoff.claimed_by && handoff.claimed_by.id === me) handedToMe(handoff);
        countsSoon();
      },
      // Reminders and the admin step: the card's "reminded twice · owner told" line.
      "handoff.reminder": stepTaken,
      "handoff.unclaimed": stepTaken,
      "handoff.resolved": settled,
    },
    function () {
      catchUp();
    }
  );

  /* --- wait time and its colour --------------------------------------------------- */

  function paintWaits(now) {
    queue.querySelectorAll('[data-field="waiting"]').forEach(function (element) {
      element.textContent = EM.waitingText(element.dataset.since, now);
      const seconds = (now - Date.parse(element.dataset.since)) / 1000;
      const wait = element.closest(".card-wait");
      const limits = WAIT_SECONDS[element.closest("li.card").dataset.priority] || [300, 900];
      let level = "ok";
      if (seconds >= limits[1]) level = "red";
      else if (seconds >= limits[0]) level = "amber";
      if (wait.dataset.wait !== level) {
        wait.dataset.wait = level;
        wait.closest("li.card").dataset.wait = level;
      }
    });
  }
  paintWaits(Date.now());
  window.setInterval(function () { paintWaits(Date.now()); }, 1000);

  /* --- keyboard: j/k move, c claims, / searches, ? helps ---------------------------- */

  const help = document.getElementById("shortcuts-help");
  const search = document.getElementById("filter-q");

  function toggleHelp() {
    if (help.open) help.close();
    else help.showModal();
  }
  document.getElementById("help-button").addEventListener("click", toggleHelp);

  function selected() {
    const active = document.activeElement;
    return active && active.closest ? active.closest("#queue > li.card") : null;
  }

  function move(step) {
    const all = cards();
    if (!all.length) return;
    const index = all.indexOf(selected());
    const next = index < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(Math.max(index + step, 0), all.length - 1);
    all[next].focus();
    all[next].scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    const typing = target.closest && target.closest("input, textarea, select, [contenteditable]");
    if (typing) {
      if (event.key === "Escape" && target === search) search.blur();
      return;
    }
    if (help.open && event.key !== "?") return;
    if (event.key === "j") move(1);
    else if (event.key === "k") move(-1);
    else if (event.key === "c") claim(selected());
    else if (event.key === "/") search.focus();
    else if (event.key === "?") toggleHelp();
    else return;
    event.preventDefault();
  });
})();
