/* The escalation-policy section of /settings: shows the account's policy (GET /api/v1/me)
   and saves it with PATCH /api/v1/account (an empty optional field sends null: that step
   is off). */
"use strict";

(function () {
  const EM = window.EscalationMode;
  const form = document.getElementById("policy-form");
  if (!form || !EM) return;
  const status = document.getElementById("policy-status");
  const NULLABLE = ["renotify_after_minutes", "escalate_to_admins_after_minutes"];
  const FIELDS = ["renotify_after_minutes", "renotify_max", "escalate_to_admins_after_minutes"];

  async function load() {
    const result = await EM.api("GET", "/api/v1/me");
    if (!result.ok) {
      status.textContent = "Could not load the policy: " + result.message;
      return;
    }
    const account = result.data.account || {};
    FIELDS.forEach(function (name) {
      const value = account[name];
      form.elements[name].value = value === null || value === undefined ? "" : String(value);
    });
    document.getElementById("policy-save").disabled = false;
  }

  function value(name) {
    const text = form.elements[name].value.trim();
    if (text === "") return NULLABLE.includes(name) ? null : "";
    return Number(text);
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    status.textContent = "Saving…";
    const body = {};
    FIELDS.forEach(function (name) { body[name] = value(name); });
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
  load();
})();
