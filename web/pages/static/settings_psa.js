/* Settings: the account's PSA connection (pages/settings/sections/30_psa.html). The keys
   typed here go to the API once and are never shown again. */
"use strict";

(function () {
  const EM = window.EscalationMode;
  const form = document.getElementById("psa-settings-form");
  if (!form) return;
  const URL = "/api/v1/account/psa";
  const state = document.getElementById("psa-settings-state");
  const status = document.getElementById("psa-settings-status");
  const disconnect = document.getElementById("psa-disconnect");
  const kind = document.getElementById("psa-kind");
  // One fieldset per PSA, each with the fields its connector declares (data-spec).
  const fieldsets = Array.from(form.querySelectorAll(".psa-kind-fields"));

  function active() {
    return fieldsets.find(function (set) { return set.dataset.kind === kind.value; });
  }

  function spec(name) {
    const set = fieldsets.find(function (s) { return s.dataset.kind === name; });
    return set ? JSON.parse(set.dataset.spec) : null;
  }

  function showKind() {
    fieldsets.forEach(function (set) {
      const on = set.dataset.kind === kind.value;
      set.hidden = !on;
      set.disabled = !on;
    });
  }

  function values() {
    const body = { kind: kind.value };
    active().querySelectorAll("input").forEach(function (input) {
      body[input.name] = input.type === "checkbox" ? input.checked : input.value.trim();
    });
    return body;
  }

  function summary(connection) {
    const about = spec(connection.kind);
    if (!about) return connection.kind;
    return about.summary.replace(/\{(\w+)\}/g, function (_, name) {
      return connection[name] == null ? "" : connection[name];
    });
  }

  function showConnection(connection) {
    const callback = document.getElementById("psa-settings-callback");
    const polled = document.getElementById("psa-settings-polled");
    if (!connection) {
      state.dataset.state = "none";
      state.textContent = "No PSA is connected.";
      callback.hidden = true;
      polled.hidden = true;
      disconnect.hidden = true;
      return;
    }
    state.dataset.state = connection.status;
    const where = summary(connection);
    state.textContent = connection.status === "broken"
      ? "Broken: " + (connection.message || "the PSA refused our keys") + " (" + where + "). Save new keys."
      : "Connected to " + where + "." + (connection.message ? " " + connection.message : "");
    kind.value = connection.kind;
    showKind();
    active().querySelectorAll("input").forEach(function (input) {
      if (input.type === "checkbox") {
        input.checked = connection[input.name] !== false;
      } else if (input.dataset.secret !== "true" && connection[input.name] != null) {
        input.value = connection[input.name];
      }
    });
    document.getElementById("psa-settings-callback-url").textContent = connection.callback_url || "";
    callback.hidden = !connection.callback_url;
    polled.hidden = Boolean(connection.callback_url);
    disconnect.hidden = false;
  }

  async function load() {
    const result = await EM.api("GET", URL);
    if (result.ok) showConnection(result.data.kind ? result.data : null);
    else state.textContent = result.message;
  }

  kind.addEventListener("change", showKind);

  document.getElementById("psa-test").addEventListener("click", async function () {
    status.textContent = "Testing…";
    const body = values();
    const typed = Object.keys(body).some(function (name) {
      return name !== "kind" && typeof body[name] === "string" && body[name];
    });
    const result = await EM.api("POST", URL + "/test", typed ? body : undefined);
    status.dataset.ok = result.ok && result.data.ok ? "true" : "false";
    status.textContent = result.ok ? result.data.message : result.message;
  });

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    status.textContent = "Saving…";
    const result = await EM.api("PUT", URL, values());
    if (!result.ok) {
      status.textContent = result.message;
      return;
    }
    active().querySelectorAll("input[data-secret=true]").forEach(function (input) {
      input.value = "";
    });
    status.textContent = "Saved.";
    showConnection(result.data);
  });

  disconnect.addEventListener("click", async function () {
    const result = await EM.api("DELETE", URL);
    status.textContent = result.ok ? "Disconnected." : result.message;
    if (result.ok) showConnection(null);
  });

  showKind();
  load();
})();

/* The admin's mapping from PSA members to users. */
(function () {
  const EM = window.EscalationMode;
  const form = document.getElementById("psa-members-form");
  if (!form) return;
  const URL = "/api/v1/account/psa/members";
  const list = document.getElementById("psa-members");
  const status = document.getElementById("psa-members-status");

  function render(items) {
    list.replaceChildren();
    items.forEach(function (link) {
      const item = document.createElement("li");
      item.textContent = link.psa_member + " → " + link.user.name + " (" + link.user.email + ") ";
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "link-button";
      remove.textContent = "Remove";
      remove.addEventListener("click", async function () {
        const result = await EM.api("DELETE", URL + "/" + encodeURIComponent(link.psa_member));
        status.textContent = result.ok ? "Removed." : result.message;
        load();
      });
      item.appendChild(remove);
      list.appendChild(item);
    });
  }

  async function load() {
    const result = await EM.api("GET", URL);
    if (result.ok) render(result.data.items);
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const result = await EM.api("PUT", URL, {
      psa_member: form.elements.psa_member.value.trim(),
      email: form.elements.email.value.trim(),
    });
    status.textContent = result.ok ? "Mapped." : result.message;
    if (result.ok) {
      form.reset();
      load();
    }
  });

  load();
})();
