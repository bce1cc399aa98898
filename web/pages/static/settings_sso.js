/* Settings: the account's single sign-on (pages/settings/sections/40_sso.html). The client
   secret typed here goes to the API once and is never shown again. */
"use strict";

(function () {
  const EM = window.EscalationMode;
  const form = document.getElementById("sso-settings-form");
  if (!form) return;
  const URL = "/api/v1/account/sso";
  const state = document.getElementById("sso-settings-state");
  const status = document.getElementById("sso-settings-status");
  const details = document.getElementById("sso-settings-details");
  const remove = document.getElementById("sso-remove");
  const LABELS = { microsoft: "Microsoft Entra ID", google: "Google Workspace", oidc: "OpenID Connect" };

  function values() {
    const field = function (name) { return form.elements[name].value.trim(); };
    const body = {
      provider: field("provider"),
      client_id: field("client_id"),
      domains: field("domains").split(",").map(function (d) { return d.trim(); }).filter(Boolean),
      jit: { enabled: form.elements.jit_enabled.checked, role: field("jit_role") },
      required: form.elements.required.checked,
    };
    if (field("tenant_id")) body.tenant_id = field("tenant_id");
    if (field("issuer_url")) body.issuer_url = field("issuer_url");
    if (field("client_secret")) body.client_secret = field("client_secret");
    return body;
  }

  function show(connection) {
    if (!connection) {
      state.textContent = "Single sign-on is not set up: users sign in with passwords.";
      details.hidden = true;
      remove.hidden = true;
      return;
    }
    const verified = connection.domain_verification.domains.filter(function (d) { return d.verified; });
    state.textContent = "Signing in with " + LABELS[connection.provider] + " for " +
      connection.domains.join(", ") + " (" + verified.length + " of " + connection.domains.length +
      " domains verified)" + (connection.required ? "; passwords refused except for admins." : ".");
    document.getElementById("sso-redirect-uri").textContent = connection.redirect_uri;
    const list = document.getElementById("sso-domains");
    list.replaceChildren();
    connection.domain_verification.domains.forEach(function (d) {
      const item = document.createElement("li");
      item.textContent = d.domain + (d.verified ? ": verified" : ": TXT " + d.txt_name + " = " + d.txt_value);
      list.appendChild(item);
    });
    details.hidden = false;
    remove.hidden = false;
    form.elements.provider.value = connection.provider;
    form.elements.tenant_id.value = connection.tenant_id || "";
    form.elements.issuer_url.value = connection.issuer_url || "";
    form.elements.client_id.value = connection.client_id;
    form.elements.domains.value = connection.domains.join(", ");
    form.elements.jit_enabled.checked = connection.jit.enabled;
    form.elements.jit_role.value = connection.jit.role;
    form.elements.required.checked = connection.required;
  }

  async function load() {
    const result = await EM.api("GET", URL);
    if (result.ok) show(result.data);
    else if (result.status === 404) show(null);
    else state.textContent = result.message;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    status.textContent = "Saving…";
    const result = await EM.api("PUT", URL, values());
    const unplaced = EM.showFieldErrors(form, result.ok ? {} : result.details);
    if (!result.ok) {
      status.textContent = [result.message].concat(unplaced).join(" ");
      return;
    }
    form.elements.client_secret.value = "";
    status.textContent = "Saved.";
    show(result.data);
  });

  document.getElementById("sso-verify").addEventListener("click", async function () {
    const result = await EM.api("POST", URL + "/verify");
    if (result.ok) show(result.data);
    else status.textContent = result.message;
  });

  remove.addEventListener("click", async function () {
    const result = await EM.api("DELETE", URL);
    status.textContent = result.ok ? "Removed." : result.message;
    if (result.ok) show(null);
  });

  load();
})();
