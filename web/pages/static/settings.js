/* /settings: account settings, users (invite, role, deactivate), the admin's own tokens
   (create, shown once; revoke) and older security log entries, all through the JSON API.
   Everything user-supplied is written with textContent. */
"use strict";

(function () {
  const EM = window.EscalationMode;

  function formValues(form) {
    const values = {};
    for (const [name, value] of new FormData(form).entries()) values[name] = value;
    return values;
  }

  function say(element, text, failed) {
    if (!element) return;
    element.textContent = text;
    element.classList.toggle("field-error", Boolean(failed));
  }

  function fieldProblems(result) {
    const details = result.data && result.data.error ? result.data.error.details : null;
    if (!details || typeof details !== "object") return result.message;
    const parts = Object.entries(details).map(([field, messages]) =>
      field + ": " + (Array.isArray(messages) ? messages.join(" ") : String(messages)));
    return parts.length ? result.message + " " + parts.join("; ") : result.message;
  }

  async function saveAccount(form, status) {
    const values = formValues(form);
    const result = await EM.api("PATCH", "/api/v1/account", {
      manual_baseline_minutes: Number(values.manual_baseline_minutes),
      timezone: values.timezone,
    });
    say(status, result.ok ? "Saved." : fieldProblems(result), !result.ok);
  }

  async function invite(form, status) {
    const values = formValues(form);
    const body = { name: values.name, email: values.email, role: values.role };
    if (values.password) body.password = values.password;
    const result = await EM.api("POST", "/api/v1/users", body);
    if (!result.ok) return say(status, fieldProblems(result), true);
    say(status, "Invited " + result.data.user.name + ". Reloading…", false);
    window.location.reload();
  }

  async function createToken(form, status) {
    const values = formValues(form);
    const body = { name: values.name };
    if (values.expires_in_days) body.expires_in_days = Number(values.expires_in_days);
    const result = await EM.api("POST", "/api/v1/tokens", body);
    if (!result.ok) return say(status, fieldProblems(result), true);
    const box = document.querySelector("[data-token-secret]");
    box.querySelector("[data-secret-value]").textContent = result.data.secret;
    box.hidden = false;
    say(status, "Created “" + result.data.token.name + "”.", false);
    form.reset();
  }

  const submitters = { account: saveAccount, invite: invite, token: createToken };

  document.querySelectorAll("[data-settings-form]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const status = form.querySelector("[data-status]");
      say(status, "Working…", false);
      submitters[form.dataset.settingsForm](form, status);
    });
  });

  async function patchUser(row, body) {
    const status = document.querySelector("[data-users-status]");
    const result = await EM.api("PATCH", "/api/v1/users/" + row.dataset.userId, body);
    if (!result.ok) return say(status, fieldProblems(result), true);
    say(status, "Saved " + result.data.name + ". Reloading…", false);
    window.location.reload();
  }

  /* A role changes only once confirmed: picking one asks "Change role" / "Cancel" beside
     it, and says "Saved" once the server has it (no reload: the page stays where it is). */
  function roleControls(row, select) {
    const ask = row.querySelector("[data-role-confirm]");
    const status = row.querySelector("[data-role-status]");
    select.addEventListener("change", () => {
      const changed = select.value !== select.dataset.saved;
      ask.hidden = !changed;
      say(status, changed ? "Make " + select.dataset.name + " " + select.value + "?" : "", false);
    });
    ask.querySelector("[data-action='role-cancel']").addEventListener("click", () => {
      select.value = select.dataset.saved;
      ask.hidden = true;
      say(status, "", false);
      select.focus();
    });
    ask.querySelector("[data-action='role-save']").addEventListener("click", async () => {
      say(status, "Saving…", false);
      const result = await EM.api("PATCH", "/api/v1/users/" + row.dataset.userId, { role: select.value });
      if (!result.ok) return say(status, fieldProblems(result), true);
      select.dataset.saved = result.data.role;
      select.value = result.data.role;
      ask.hidden = true;
      say(status, "Saved: " + result.data.name + " is now " + result.data.role + ".", false);
    });
  }

  document.querySelectorAll("[data-user-id] [data-action]").forEach((control) => {
    const row = control.closest("[data-user-id]");
    const action = control.dataset.action;
    if (action === "role") roleControls(row, control);
    else if (action === "deactivate" || action === "reactivate") {
      control.addEventListener("click", () => patchUser(row, { active: action === "reactivate" }));
    }
  });

  document.querySelectorAll("[data-token-id] [data-action='revoke']").forEach((button) => {
    button.addEventListener("click", async () => {
      const row = button.closest("[data-token-id]");
      button.disabled = true;
      const result = await EM.api("DELETE", "/api/v1/tokens/" + row.dataset.tokenId);
      if (result.ok || result.status === 404) {
        row.remove();
      } else {
        button.disabled = false;
        window.alert(result.message);
      }
    });
  });

  function cell(tag, text) {
    const element = document.createElement(tag);
    element.textContent = text;
    return element;
  }

  const more = document.querySelector("[data-action='more-log']");
  if (more) {
    more.addEventListener("click", async () => {
      more.disabled = true;
      const path = "/api/v1/security-log?limit=50&cursor=" + encodeURIComponent(more.dataset.cursor);
      const result = await EM.api("GET", path);
      if (!result.ok) {
        more.disabled = false;
        return;
      }
      const rows = document.querySelector("[data-log-rows]");
      for (const item of result.data.items) {
        const row = document.createElement("tr");
        const when = cell("th", EM.localTime ? EM.localTime(item.created_at) : item.created_at);
        when.scope = "row";
        const about = item.subject ? item.subject.name : (item.details.email || "—");
        row.append(when, cell("td", item.kind.replace(/_/g, " ")),
          cell("td", item.actor ? item.actor.name : "—"), cell("td", about),
          cell("td", item.ip || "—"), cell("td", item.user_agent || "—"));
        row.lastChild.className = "clip";
        rows.append(row);
      }
      if (result.data.next_cursor) {
        more.dataset.cursor = result.data.next_cursor;
        more.disabled = false;
      } else {
        more.remove();
      }
    });
  }
})();
