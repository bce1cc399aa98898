/* The seniors' queue: live cards, Claim, and catching up after a dropped connection. */
"use strict";

(function () {
  const EM = window.EscalationMode;
  const queue = document.getElementById("queue");
  const empty = document.getElementById("queue-empty");
  const problem = document.getElementById("queue-error");
  const announcer = document.getElementById("announcer");
  const me = Number(document.body.dataset.userId);
  // A card someone else took stays (greyed, saying who) this long before it goes.
  const TAKEN_CARD_LINGER_MS = 30000;
  const MAX_QUEUE_PAGES = 10;

  function cardFor(id) {
    return queue.querySelector('li.card[data-handoff-id="' + Number(id) + '"]');
  }

  function updateEmpty() {
    empty.hidden = queue.children.length > 0;
  }

  function showProblem(message) {
    problem.textContent = message || "";
    problem.hidden = !message;
  }

  function applyHandoff(card, handoff) {
    const titleId = "handoff-" + handoff.id + "-title";
    card.dataset.handoffId = handoff.id;
    card.dataset.sessionId = handoff.session_id;
    card.dataset.status = handoff.status;
    card.querySelector("article").setAttribute("aria-labelledby", titleId);
    card.querySelector(".card-title").id = titleId;
    card.querySelector('[data-action="claim"]').setAttribute("aria-describedby", titleId);
    const waiting = card.querySelector('[data-field="waiting"]');
    waiting.dataset.since = handoff.created_at;
    waiting.setAttribute("datetime", handoff.created_at);
    const pkg = handoff.escalation_package || {};
    EM.fill(card, {
      title: handoff.title,
      technician: handoff.escalated_by ? handoff.escalated_by.name : "",
      reason: handoff.reason,
      gist: EM.gist(pkg.ai_assessment) || "No assessment",
      waiting: EM.waitingText(handoff.created_at),
    });
  }

  function insertInOrder(card) {
    // Oldest first; handoff ids grow with creation.
    const id = Number(card.dataset.handoffId);
    for (const other of queue.children) {
      if (Number(other.dataset.handoffId) > id) {
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

  /* Released: back on the queue (a lingering "taken" card makes way for the open one). */
  function reopen(handoff) {
    const stale = cardFor(handoff.id);
    if (stale && stale.dataset.status !== "open") stale.remove();
    addOpen(handoff, true);
  }

  function addOpen(handoff, announce) {
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
    updateEmpty();
    if (announce) announcer.textContent = "New escalation: " + handoff.title;
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
    button.disabled = true;
    button.textContent = "Claim";
    let text = message;
    if (!text) {
      if (handoff.claimed_by) text = "Already claimed by " + handoff.claimed_by.name;
      else if (handoff.status === "resolved") text = "Resolved";
      else text = "No longer open";
    }
    EM.fill(card, { status: text });
    scheduleRemoval(card);
  }

  async function claim(card) {
    const id = Number(card.dataset.handoffId);
    const button = card.querySelector('[data-action="claim"]');
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
    if (!button || button.disabled) return;
    claim(button.closest("li.card"));
  });

  /* After every (re)connect: fetch the open queue, add what was missed, and settle cards
     whose handoff stopped being open while we were not listening. */
  async function catchUp() {
    const open = [];
    let cursor = null;
    for (let page = 0; page < MAX_QUEUE_PAGES; page += 1) {
      let path = "/api/v1/escalations?status=open&limit=200";
      if (cursor) path += "&cursor=" + encodeURIComponent(cursor);
      const result = await EM.api("GET", path);
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
    open.forEach(function (handoff) { addOpen(handoff, true); });
    for (const card of Array.from(queue.children)) {
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

  EM.connectLive(
    {
      "handoff.created": function (payload) {
        const handoff = EM.handoffOf(payload);
        if (handoff && handoff.status === "open") addOpen(handoff, true);
      },
      "handoff.claimed": function (payload) {
        const handoff = EM.handoffOf(payload);
        if (handoff) markTaken(handoff);
      },
      "handoff.resolved": function (payload) {
        const handoff = EM.handoffOf(payload);
        if (handoff) markTaken(handoff);
      },
      "handoff.reassigned": function (payload) {
        const handoff = EM.handoffOf(payload);
        if (handoff) markTaken(handoff);
      },
      "handoff.released": function (payload) {
        const handoff = EM.handoffOf(payload);
        if (handoff && handoff.status === "open") reopen(handoff);
      },
      "handoff.reminder": function (payload) {
        const handoff = EM.handoffOf(payload);
        if (handoff && handoff.status === "open") addOpen(handoff, false);
      },
      "handoff.unclaimed": function (payload) {
        const handoff = EM.handoffOf(payload);
        if (handoff && handoff.status === "open") addOpen(handoff, false);
      },
    },
    function () {
      catchUp();
    }
  );

  window.setInterval(function () {
    const now = Date.now();
    queue.querySelectorAll('[data-field="waiting"]').forEach(function (element) {
      element.textContent = EM.waitingText(element.dataset.since, now);
    });
  }, 1000);
})();
