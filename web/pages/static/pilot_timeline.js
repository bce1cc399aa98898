/* The session page's handoff timeline (pages/_timeline.html): fetched from the API, again
   on every live event about this handoff, and every few seconds while notifications may
   still change state. It also tells the other pilot scripts when the handoff changed, with
   a DOM event "em:handoff" carrying the handoff object. */
"use strict";

(function () {
  const EM = window.EscalationMode;
  const section = document.getElementById("timeline");
  if (!section || !EM) return;
  const handoffId = Number(section.dataset.handoffId);
  const list = document.getElementById("timeline-items");
  const status = document.getElementById("timeline-status");
  const REFRESH_MS = 10000;
  const EVENTS = [
    "handoff.created", "handoff.claimed", "handoff.resolved", "handoff.released",
    "handoff.reassigned", "handoff.reminder", "handoff.unclaimed",
  ];

  const EVENT_WORDS = {
    "handoff.created": "new escalation",
    "handoff.claimed": "claimed",
    "handoff.reminder": "reminder",
    "handoff.unclaimed": "to the admins",
    "handoff.reassigned": "handed over",
    "handoff.released": "released",
    "handoff.resolved": "resolved",
  };

  function name(ref) {
    return ref && ref.name ? ref.name : "someone";
  }

  function describe(item) {
    const d = item.details || {};
    switch (item.kind) {
      case "created": return "Escalated by " + name(item.actor) + (d.reason ? ": " + d.reason : "");
      case "notified": {
        const to = d.recipient ? "Email to " + d.recipient.name : "Live update to the seniors";
        const about = EVENT_WORDS[d.event] || d.event || "";
        const why = d.reason ? ", " + d.reason.replace(/_/g, " ") : "";
        return to + " (" + about + why + "): " + d.status + (d.last_error ? " — " + d.last_error : "");
      }
      case "reminded": return "Reminder " + (d.number || "") + " to the seniors";
      case "escalated_to_admins": return "Still unclaimed: escalated to the admins";
      case "claimed": return "Claimed by " + name(item.actor);
      case "released": return "Released by " + name(item.actor) + (d.reason ? ": " + d.reason : "");
      case "reassigned": {
        // The holder handing it on says so plainly; an admin moving it names both.
        const self = item.actor && d.from && item.actor.id === d.from.id;
        const moved = self
          ? name(item.actor) + " handed it to " + name(d.to)
          : "Reassigned by " + name(item.actor) + " from " + name(d.from) + " to " + name(d.to);
        return moved + (d.reason ? ": " + d.reason : "");
      }
      case "first_action": return "First action by " + name(item.actor) + " (" + (d.action === "psa_writeback" ? "PSA note" : "chat message") + ")";
      case "resolved": return "Resolved by " + name(item.actor);
      default: return item.kind;
    }
  }

  /* Times with seconds: what happened within a minute reads in order. */
  function stamp(iso) {
    const moment = new Date(iso);
    if (Number.isNaN(moment.getTime())) return "";
    const time = moment.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    return moment.toDateString() === new Date().toDateString() ? time : moment.toLocaleDateString() + " " + time;
  }

  function line(item, text) {
    const entry = document.createElement("li");
    entry.dataset.kind = item.kind;
    const time = document.createElement("time");
    time.setAttribute("datetime", item.at);
    time.title = item.at;
    time.textContent = stamp(item.at);
    const words = document.createElement("span");
    words.className = "timeline-text";
    words.textContent = " " + text;
    entry.append(time, words);
    return entry;
  }

  const opened = new Set();

  /* The notifications of a run, folded under one line that says how they went. */
  function folded(run) {
    const counts = {};
    run.forEach(function (item) {
      const state = (item.details || {}).status || "sent";
      counts[state] = (counts[state] || 0) + 1;
    });
    const states = Object.keys(counts).map(function (state) { return counts[state] + " " + state; });
    const entry = document.createElement("li");
    entry.dataset.kind = "notifications";
    const head = line(run[0], run.length + (run.length === 1 ? " notification" : " notifications") +
      ": " + states.join(", "));
    const details = document.createElement("details");
    // Kept open across the periodic refresh once the reader opened it.
    const key = run[0].at + "|" + ((run[0].details || {}).event || "");
    details.open = opened.has(key);
    details.addEventListener("toggle", function () {
      if (details.open) opened.add(key);
      else opened.delete(key);
    });
    // The line itself (its time and how the run went) is what opens it.
    const summary = document.createElement("summary");
    summary.append.apply(summary, Array.from(head.childNodes));
    const inner = document.createElement("ul");
    inner.className = "timeline-notifications";
    run.forEach(function (item) { inner.appendChild(line(item, describe(item))); });
    details.append(summary, inner);
    entry.appendChild(details);
    return entry;
  }

  function render(items) {
    list.textContent = "";
    let run = [];
    function flush() {
      if (run.length) list.appendChild(folded(run));
      run = [];
    }
    items.forEach(function (item) {
      if (item.kind === "notified") {
        run.push(item);
        return;
      }
      flush();
      list.appendChild(line(item, describe(item)));
    });
    flush();
  }

  async function refresh() {
    const result = await EM.api("GET", "/api/v1/escalations/" + handoffId + "/timeline");
    if (!result.ok) {
      status.textContent = "Could not load the timeline: " + result.message;
      status.hidden = false;
      return;
    }
    status.hidden = true;
    render(result.data.items);
  }

  function onEvent(payload) {
    const handoff = EM.handoffOf(payload);
    if (!handoff || Number(handoff.id) !== handoffId) return;
    document.dispatchEvent(new CustomEvent("em:handoff", { detail: handoff }));
    refresh();
  }

  const handlers = {};
  EVENTS.forEach(function (event) { handlers[event] = onEvent; });
  EM.connectLive(handlers, refresh);
  refresh();
  window.setInterval(refresh, REFRESH_MS);
  window.EscalationMode.refreshTimeline = refresh;
})();
