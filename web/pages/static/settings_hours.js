/* The business-hours section of /settings: shows `business_hours` from GET /api/v1/account
   and saves it with PATCH /api/v1/account. "Always inside" sends null; a day with both
   times empty has no window. */
"use strict";

(function () {
  const EM = window.EscalationMode;
  const form = document.getElementById("hours-form");
  if (!form || !EM) return;
  const status = document.getElementById("hours-status");
  const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

  function show(account) {
    const hours = account.business_hours;
    form.elements.always.checked = hours === null || hours === undefined;
    DAYS.forEach(function (day) {
      const window_ = hours ? hours.windows.find(function (w) { return w.day === day; }) : null;
      form.elements[day + ".start"].value = window_ ? window_.start : "";
      form.elements[day + ".end"].value = window_ ? window_.end : "";
    });
    form.elements.holidays.value = hours ? hours.holidays.join("\n") : "";
  }

  function body() {
    if (form.elements.always.checked) return { business_hours: null };
    const windows = [];
    DAYS.forEach(function (day) {
      const start = form.elements[day + ".start"].value.trim();
      const end = form.elements[day + ".end"].value.trim();
      if (start || end) windows.push({ day: day, start: start, end: end });
    });
    const holidays = form.elements.holidays.value.split(/\s+/).filter(Boolean);
    return { business_hours: { windows: windows, holidays: holidays } };
  }

  async function load() {
    const result = await EM.api("GET", "/api/v1/account");
    if (!result.ok) {
      status.textContent = "Could not load the business hours: " + result.message;
      return;
    }
    show(result.data);
    document.getElementById("hours-save").disabled = false;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    status.textContent = "Saving…";
    const result = await EM.api("PATCH", "/api/v1/account", body());
    if (result.ok) {
      show(result.data);
      status.textContent = "Saved.";
      return;
    }
    const details = (result.data && result.data.error && result.data.error.details) || {};
    const problems = [].concat(details.business_hours || []);
    status.textContent = problems.length ? problems.join(" ") : result.message;
  });

  load();
})();
