/* The escalation-policy section of /settings: shows the account's policy (GET
   /api/v1/account) and saves it with PATCH /api/v1/account. An empty account-wide field
   sends null (that step is off); an empty per-priority field is left out of
   `policy_by_priority`, so that priority uses the account-wide value. */
"use strict";

(function () {
  const EM = window.EscalationMode;
  const form = document.getElementById("policy-form");
  if (!form || !EM) return;
  const status = document.getElementById("policy-status");
  const NULLABLE = ["renotify_after_minutes", "escalate_to_admins_after_minutes"];
  const FIELDS = ["renotify_after_minutes", "renotify_max", "escalate_to_admins_after_minutes"];
  const PRIORITIES = ["p1", "p2", "p3", "p4"];
  const PER_PRIORITY = ["renotify_after_minutes", "escalate_to_admins_after_minutes"];

  function show(account) {
    FIELDS.forEach(function (name) {
      const value = account[name];
      form.elements[name].value = value === null || value === undefined ? "" : String(value);
    });
    const byPriority = account.policy_by_priority || {};
    PRIORITIES.forEach(function (p) {
      PER_PRIORITY.forEach(function (name) {
        const input = form.elements[p + "." + name];
        const entry = byPriority[p] || {};
        const own = Object.prototype.hasOwnProperty.call(entry, name);
        input.value = own && entry[name] !== null ? String(entry[name]) : "";
        const wide = account[name];
        input.placeholder = own && entry[name] === null ? "off"
          : (wide === null || wide === undefined ? "off" : String(wide));
      });
    });
  }

  async function load() {
    const result = await EM.api("GET", "/api/v1/account");
    if (!result.ok) {
      status.textContent = "Could not load the policy: " + result.message;
      return;
    }
    show(result.data);
    document.getElementById("policy-save").disabled = false;
  }

  function value(name) {
    const text = form.elements[name].value.trim();
    if (text === "") return NULLABLE.includes(name) ? null : "";
    return Number(text);
  }

  function byPriority() {
    const result = {};
    PRIORITIES.forEach(function (p) {
      const entry = {};
      PER_PRIORITY.forEach(function (name) {
        const text = form.elements[p + "." + name].value.trim();
        if (text !== "") entry[name] = Number(text);
      });
      if (Object.keys(entry).length) result[p] = entry;
    });
    return result;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    status.textContent = "Saving…";
    const body = {policy_by_priority: byPriority()};
    FIELDS.forEach(function (name) { body[name] = value(name); });
    const result = await EM.api("PATCH", "/api/v1/account", body);
    if (result.ok) {
      show(result.data);
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
