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

  function name(ref) {
    return ref && ref.name ? ref.name : "someone";
  }

  function describe(item) {
    const d = item.details || {};
    switch (item.kind) {
      case "created": return "Escalated by " + name(item.actor) + (d.reason ? ": " + d.reason : "");
      case "notified": {
        const to = d.recipient ? "Email to " + d.recipient.name : "Live event";
        return to + " (" + (d.event || "") + "): " + d.status + (d.last_error ? " — " + d.last_error : "");
      }
      case "reminded": return "Reminder " + (d.number || "") + " to the seniors";
      case "escalated_to_admins": return "Still unclaimed: escalated to the admins";
      case "claimed": return "Claimed by " + name(item.actor);
      case "released": return "Released by " + name(item.actor) + (d.reason ? ": " + d.reason : "");
      case "reassigned": return "Reassigned by " + name(item.actor) + " from " + name(d.from) + " to " + name(d.to);
      case "first_action": return "First action by " + name(item.actor) + " (" + (d.action || "") + ")";
      case "resolved": return "Resolved by " + name(item.actor);
      default: return item.kind;
    }
  }

  function render(items) {
    list.textContent = "";
    items.forEach(function (item) {
      const entry = document.createElement("li");
      entry.dataset.kind = item.kind;
      const time = document.createElement("time");
      time.setAttribute("datetime", item.at);
      time.textContent = EM.localTime(item.at);
      const text = document.createElement("span");
      text.className = "timeline-text";
      text.textContent = " " + describe(item);
      entry.append(time, text);
      list.appendChild(entry);
    });
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
