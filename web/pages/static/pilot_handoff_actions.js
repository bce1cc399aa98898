/* Release and Reassign on the session page (pages/_handoff_actions.html). The panel shows
   while the viewer holds the claim, or is an admin and someone holds it. */
"use strict";

(function () {
  const EM = window.EscalationMode;
  const panel = document.getElementById("handoff-actions");
  if (!panel || !EM) return;
  const handoffId = Number(panel.dataset.handoffId);
  const viewerId = Number(panel.dataset.viewerId);
  const isAdmin = panel.dataset.viewerRole === "admin";
  const status = document.getElementById("handoff-actions-status");

  // Only the panel is ours; the status line, Resolve and the rest follow the handoff in
  // pilot.js, which hands every change here.
  function show(handoff) {
    const held = handoff && handoff.status === "claimed" && handoff.claimed_by;
    panel.hidden = !(held && (isAdmin || handoff.claimed_by.id === viewerId));
  }

  if (EM.pilot) EM.pilot.onHandoff(show);

  async function load() {
    const result = await EM.api("GET", "/api/v1/escalations/" + handoffId);
    if (result.ok) show(result.data);
  }

  async function act(path, body, done) {
    status.textContent = "";
    const result = await EM.api("POST", "/api/v1/escalations/" + handoffId + path, body);
    if (!result.ok) {
      status.textContent = result.message || "That did not work. Try again.";
      return;
    }
    if (EM.pilot) EM.pilot.show(result.data);
    else show(result.data);
    status.textContent = done;
    if (EM.refreshTimeline) EM.refreshTimeline();
  }

  document.getElementById("release-form").addEventListener("submit", function (event) {
    event.preventDefault();
    const reason = document.getElementById("release-reason").value.trim();
    if (!reason) {
      status.textContent = "Say why you are releasing it.";
      return;
    }
    act("/release", { reason: reason }, "Released: it is back on the queue.");
  });

  document.getElementById("reassign-form").addEventListener("submit", function (event) {
    event.preventDefault();
    const userId = Number(document.getElementById("reassign-user").value);
    if (!userId) {
      status.textContent = "Choose who should take it.";
      return;
    }
    act("/reassign", { user_id: userId }, "Reassigned.");
  });

  document.addEventListener("em:handoff", function (event) {
    show(event.detail);
  });
  load();
})();
