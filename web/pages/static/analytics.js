/* Analytics: the admin edits the manual baseline here (PATCH /api/v1/account). */
"use strict";

(function () {
  const EM = window.EscalationMode;
  const form = document.getElementById("baseline-form");
  if (!form) return;
  const status = document.getElementById("baseline-status");

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const field = form.elements.manual_baseline_minutes;
    const minutes = Number(field.value);
    if (field.value.trim() === "" || !Number.isInteger(minutes) || minutes < 0 || minutes > 100000) {
      status.textContent = "Enter whole minutes, from 0 to 100000.";
      field.setAttribute("aria-invalid", "true");
      field.focus();
      return;
    }
    field.removeAttribute("aria-invalid");
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    status.textContent = "Saving…";
    const result = await EM.api("PATCH", "/api/v1/account", { manual_baseline_minutes: minutes });
    button.disabled = false;
    if (!result.ok) {
      status.textContent = result.message;
      return;
    }
    status.textContent = "Saved: " + result.data.manual_baseline_minutes +
      " min. The figures use it from the next rollup, within a minute.";
    const note = document.getElementById("baseline-default-note");
    if (note) note.hidden = true;
  });
})();
