/* The escalation-policy section of /settings: PATCH /api/v1/account with the three fields
   (an empty optional field sends null: that step is off). */
"use strict";

(function () {
  const EM = window.EscalationMode;
  const form = document.getElementById("policy-form");
  if (!form || !EM) return;
  const status = document.getElementById("policy-status");
  const NULLABLE = ["renotify_after_minutes", "escalate_to_admins_after_minutes"];

  function value(name) {
    const text = form.elements[name].value.trim();
    if (text === "") return NULLABLE.includes(name) ? null : "";
    return Number(text);
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    status.textContent = "Saving…";
    const body = {};
    ["renotify_after_minutes", "renotify_max", "escalate_to_admins_after_minutes"].forEach(
      function (name) { body[name] = value(name); }
    );
    const result = await EM.api("PATCH", "/api/v1/account", body);
    if (result.ok) {
      status.textContent = "Saved.";
      return;
    }
    const details = (result.data && result.data.error && result.data.error.details) || {};
    const problems = Object.keys(details).map(function (field) {
      return field.replace(/_/g, " ") + ": " + [].concat(details[field]).join(" ");
    });
    status.textContent = problems.length ? problems.join(" ") : result.message;
  });
})();
