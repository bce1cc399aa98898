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

  function values() {
    const body = {};
    ["kind", "site_url", "company_id", "public_key", "private_key", "client_id"].forEach(function (name) {
      body[name] = form.elements[name].value.trim();
    });
    body.verify_callback_signatures = form.elements.verify_callback_signatures.checked;
    return body;
  }

  function showConnection(connection) {
    const callback = document.getElementById("psa-settings-callback");
    if (!connection) {
      state.dataset.state = "none";
      state.textContent = "No PSA is connected.";
      callback.hidden = true;
      disconnect.hidden = true;
      return;
    }
    state.dataset.state = connection.status;
    const where = "ConnectWise company " + connection.company_id + " at " + connection.site_url;
    state.textContent = connection.status === "broken"
      ? "Broken: " + (connection.message || "the PSA refused our keys") + " (" + where + "). Save new keys."
      : "Connected to " + where + "." + (connection.message ? " " + connection.message : "");
    form.elements.site_url.value = connection.site_url;
    form.elements.company_id.value = connection.company_id;
    form.elements.verify_callback_signatures.checked = connection.verify_callback_signatures !== false;
    document.getElementById("psa-settings-callback-url").textContent = connection.callback_url;
    callback.hidden = false;
    disconnect.hidden = false;
  }

  async function load() {
    const result = await EM.api("GET", URL);
    if (result.ok) showConnection(result.data.kind ? result.data : null);
    else state.textContent = result.message;
  }

  document.getElementById("psa-test").addEventListener("click", async function () {
    status.textContent = "Testing…";
    const body = values();
    const typed = body.site_url || body.company_id || body.public_key || body.private_key;
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
    form.elements.public_key.value = "";
    form.elements.private_key.value = "";
    status.textContent = "Saved.";
    showConnection(result.data);
  });

  disconnect.addEventListener("click", async function () {
    const result = await EM.api("DELETE", URL);
    status.textContent = result.ok ? "Disconnected." : result.message;
    if (result.ok) showConnection(null);
  });

  load();
})();

/* The admin's mapping from ConnectWise members to users. */
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
