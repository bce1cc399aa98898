/* The sign-in page: once the email's domain has single sign-on, offer
   "Sign in with Microsoft / Google / SSO" (GET /login/sso/provider?email=). */
"use strict";

(function () {
  const email = document.getElementById("email");
  const choice = document.getElementById("sso-choice");
  const link = document.getElementById("sso-link");
  if (!email || !choice || !link) return;
  let timer = null;
  let asked = "";

  async function lookUp() {
    const value = email.value.trim();
    const domain = value.includes("@") ? value.split("@").pop() : "";
    if (!domain.includes(".")) {
      choice.hidden = true;
      asked = "";
      return;
    }
    if (value === asked) return;
    asked = value;
    let answer = null;
    try {
      const response = await fetch(
        "/login/sso/provider?email=" + encodeURIComponent(value),
        { headers: { Accept: "application/json" }, credentials: "same-origin" }
      );
      answer = response.ok ? await response.json() : null;
    } catch (error) {
      answer = null;
    }
    if (value !== email.value.trim()) return; // typed on meanwhile
    if (answer && answer.provider) {
      link.textContent = answer.label;
      link.href = link.dataset.base + "?email=" + encodeURIComponent(value);
      choice.hidden = false;
    } else {
      choice.hidden = true;
    }
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(lookUp, 250);
  }

  email.addEventListener("input", soon);
  email.addEventListener("change", lookUp);
  if (email.value) lookUp();
})();
