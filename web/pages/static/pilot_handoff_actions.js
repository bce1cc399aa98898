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
  const handoffStatus = document.getElementById("handoff-status");

  function show(handoff) {
    const held = handoff.status === "claimed" && handoff.claimed_by;
    panel.hidden = !(held && (isAdmin || handoff.claimed_by.id === viewerId));
    // "Mark resolved" belongs to the holder (and admins) too: not after handing it on.
    const resolve = document.getElementById("resolve-button");
    if (resolve) resolve.closest(".form-actions").hidden = panel.hidden;
    if (!handoffStatus) return;
    handoffStatus.dataset.status = handoff.status;
    if (handoff.status === "open") handoffStatus.textContent = "Waiting for a senior to claim it.";
    else if (held) handoffStatus.textContent = "Claimed by " + handoff.claimed_by.name + ".";
    else if (handoff.status === "resolved") handoffStatus.textContent = "Resolved.";
  }

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
    show(result.data);
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
