/* /oncall: "Take this shift" posts an override for the caller over that segment (from now
   on when it has begun), "Remove" deletes an override, and the calendar link is created,
   shown once, rotated or revoked through /api/v1/me/calendar. */
"use strict";

(function () {
  const EM = window.EscalationMode;
  if (!EM) return;
  const viewer = Number(document.body.dataset.userId);

  function problem(result) {
    const details = (result.data && result.data.error && result.data.error.details) || {};
    const parts = Object.keys(details).map(function (field) {
      return field.replace(/_/g, " ") + ": " + [].concat(details[field]).join(" ");
    });
    return parts.length ? parts.join(" ") : result.message;
  }

  document.querySelectorAll(".take-shift").forEach(function (button) {
    button.addEventListener("click", async function () {
      const row = button.closest("tr");
      const status = document.getElementById("take-status");
      const now = new Date();
      const start = new Date(row.dataset.start) < now ? now.toISOString().replace(/\.\d+Z$/, "Z") : row.dataset.start;
      button.disabled = true;
      status.textContent = "Taking the shift…";
      const result = await EM.api("POST", "/api/v1/oncall/overrides", {
        rotation_id: Number(row.dataset.rotationId),
        user_id: viewer,
        start: start,
        end: row.dataset.end,
        reason: "Taken from the on-call page",
      });
      if (result.ok) {
        status.textContent = "You have this shift.";
        window.location.reload();
        return;
      }
      button.disabled = false;
      status.textContent = "Could not take the shift: " + problem(result);
    });
  });

  document.querySelectorAll(".delete-override").forEach(function (button) {
    button.addEventListener("click", async function () {
      const item = button.closest("li");
      const result = await EM.api("DELETE", "/api/v1/oncall/overrides/" + item.dataset.overrideId);
      if (result.ok || result.status === 204) window.location.reload();
      else button.textContent = "Could not remove: " + problem(result);
    });
  });

  const create = document.getElementById("calendar-create");
  if (!create) return;
  const field = document.getElementById("calendar-url");
  const status = document.getElementById("calendar-status");
  create.addEventListener("click", async function () {
    status.textContent = "Creating…";
    const result = await EM.api("POST", "/api/v1/me/calendar");
    if (!result.ok) {
      status.textContent = "Could not create the link: " + problem(result);
      return;
    }
    field.value = result.data.url;
    field.hidden = false;
    field.select();
    create.textContent = "Rotate calendar link";
    status.textContent = "Copy this address now: it is not shown again. Any older link has stopped working.";
  });
  document.getElementById("calendar-revoke").addEventListener("click", async function () {
    const result = await EM.api("DELETE", "/api/v1/me/calendar");
    field.hidden = true;
    field.value = "";
    status.textContent = result.ok || result.status === 204 ? "Calendar link revoked." : problem(result);
  });
})();
