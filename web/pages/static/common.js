/* Shared helpers for the pages: JSON API calls with the CSRF header, the live connection
   with its status indicator, and text formatting. Everything user-supplied is written with
   textContent, never as HTML. */
"use strict";

(function () {
  const CSRF_HEADER = "X-CSRFToken";

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  /* Call the JSON API with the login cookie. Resolves to {ok, status, data, message, code};
     never rejects (a network failure is status 0). */
  async function api(method, path, body, extraHeaders) {
    const headers = Object.assign(
      { Accept: "application/json", [CSRF_HEADER]: csrfToken() },
      extraHeaders || {}
    );
    const options = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (error) {
      return {
        ok: false, status: 0, data: null, code: "network",
        message: "Could not reach the server. Check your connection and try again.",
      };
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    const problem = data && data.error ? data.error : null;
    let message = problem ? problem.message : "";
    if (!response.ok && !message) message = "The server answered " + response.status + ".";
    if (response.status === 401) {
      message = "Your sign-in has ended: sign in again to carry on.";
      if (path !== ME_PATH) signedOut();
    }
    return {
      ok: response.ok, status: response.status, data: data, code: problem ? problem.code : null,
      message: message, details: problem && problem.details ? problem.details : {},
    };
  }

  /* A form's 422: each field's messages under its input (details maps field -> messages;
     "jit.role" names the input "jit_role"). Messages for no input of the form are returned,
     for the caller to show with the top-level message. An empty details clears the form. */
  function showFieldErrors(form, details) {
    form.querySelectorAll(".field-error[data-field]").forEach(function (node) {
      const input = form.elements[node.dataset.field];
      if (input && input.removeAttribute) {
        input.removeAttribute("aria-invalid");
        input.removeAttribute("aria-describedby");
      }
      node.remove();
    });
    const unplaced = [];
    Object.keys(details || {}).forEach(function (key) {
      const messages = [].concat(details[key]).map(String);
      const name = key.replace(/\./g, "_");
      const input = form.elements[name];
      if (!input || !input.id) {
        unplaced.push(key + ": " + messages.join(" "));
        return;
      }
      const note = document.createElement("p");
      note.className = "field-error";
      note.id = input.id + "-error";
      note.dataset.field = name;
      note.textContent = messages.join(" ");
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", note.id);
      const after = input.closest("label.checkbox") || input;
      after.insertAdjacentElement("afterend", note);
    });
    return unplaced;
  }

  /* --- the sign-in: say at once when it has ended --------------------------------- */

  const ME_PATH = "/api/v1/me";
  let ended = false;
  let checking = null;

  /* The sign-in ended (signed out in another tab, deactivated, expired): say so, offer
     to sign in again (back to this page), and stop pretending to reconnect. */
  function signedOut() {
    if (ended) return;
    ended = true;
    const banner = document.getElementById("signed-out");
    if (banner) banner.hidden = false;
    const name = document.querySelector(".viewer-name");
    if (name) name.textContent = "Signed out";
    const status = document.getElementById("live-status");
    if (status) {
      status.dataset.state = "off";
      status.querySelector(".live-text").textContent = "Signed out: no live updates";
    }
    sockets.forEach(function (socket) { socket.disconnect(); });
    document.dispatchEvent(new CustomEvent("em:signed-out"));
  }

  /* Ask the server whether this sign-in still holds (401: it ended). A network failure
     says nothing about it: the live indicator keeps saying "reconnecting". */
  function checkSignIn() {
    if (ended || checking) return checking;
    checking = fetch(ME_PATH, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { if (response.status === 401) signedOut(); })
      .catch(function () {})
      .finally(function () { checking = null; });
    return checking;
  }

  // A page without a live connection still learns of it when it comes back into view,
  // and every half minute.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") checkSignIn();
  });
  if (document.body && document.body.dataset.userId) window.setInterval(checkSignIn, 30000);

  /* --- drafts: what was typed survives a reload and a sign-in -------------------- */

  /* Keep the field's text in this browser (per user and `key`) until `clearDraft`. */
  function keepDraft(field, key) {
    if (!field) return;
    const user = document.body.dataset.userId || "anyone";
    const storageKey = "em-draft:" + user + ":" + key;
    try {
      const saved = window.localStorage.getItem(storageKey);
      if (saved && !field.value) field.value = saved;
    } catch (error) { /* storage off: drafts are not kept */ }
    field.addEventListener("input", function () {
      try {
        if (field.value) window.localStorage.setItem(storageKey, field.value);
        else window.localStorage.removeItem(storageKey);
      } catch (error) { /* storage full or off */ }
    });
    field.dataset.draftKey = storageKey;
  }

  function clearDraft(field) {
    if (!field || !field.dataset.draftKey) return;
    try { window.localStorage.removeItem(field.dataset.draftKey); } catch (error) { /* off */ }
  }

  /* The AI summary of a handoff is extracted once, on the server (models/summaries.py):
     cards and live events carry it as `ai_summary`. */

  function pad(number) {
    return String(number).padStart(2, "0");
  }

  function waitingText(since, now) {
    const start = Date.parse(since);
    if (Number.isNaN(start)) return "";
    let seconds = Math.max(Math.floor(((now || Date.now()) - start) / 1000), 0);
    if (seconds < 60) return seconds + " s";
    let minutes = Math.floor(seconds / 60);
    seconds %= 60;
    if (minutes < 60) return minutes + " min " + pad(seconds) + " s";
    let hours = Math.floor(minutes / 60);
    minutes %= 60;
    if (hours < 24) return hours + " h " + pad(minutes) + " min";
    const days = Math.floor(hours / 24);
    hours %= 24;
    return days + " d " + hours + " h";
  }

  function localTime(iso) {
    const moment = new Date(iso);
    if (Number.isNaN(moment.getTime())) return "";
    const sameDay = moment.toDateString() === new Date().toDateString();
    const time = moment.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return sameDay ? time : moment.toLocaleDateString() + " " + time;
  }

  /* <time data-local-time datetime="...Z"> shows the viewer's local time. */
  function localizeTimes(root) {
    (root || document).querySelectorAll("time[data-local-time]").forEach(function (element) {
      const text = localTime(element.getAttribute("datetime"));
      if (text) {
        element.textContent = text;
        element.title = element.getAttribute("datetime");
      }
    });
  }

  /* Set the text of every [data-field=NAME] under root. */
  function fill(root, fields) {
    Object.keys(fields).forEach(function (name) {
      root.querySelectorAll('[data-field="' + name + '"]').forEach(function (element) {
        const value = fields[name];
        element.textContent = value === null || value === undefined ? "" : String(value);
      });
    });
  }

  function cloneTemplate(id) {
    return document.getElementById(id).content.firstElementChild.cloneNode(true);
  }

  /* Events carry the handoff object itself; accept {handoff: {...}} too. */
  function handoffOf(payload) {
    if (payload && typeof payload === "object" && payload.handoff && typeof payload.handoff === "object") {
      return payload.handoff;
    }
    return payload;
  }

  /* Open the live connection (Socket.IO, login cookie) and keep #live-status honest:
     "Live" while connected, "paused" while the client reconnects, "off" when it gave up.
     onConnect runs after every (re)connect: that is where a page catches up.
     A page has one connection: a second call adds its handlers to the first one's socket. */
  const sockets = [];
  const onConnects = [];
  let connections = 0;

  function showLive(state, text) {
    const status = document.getElementById("live-status");
    if (!status) return;
    status.dataset.state = state;
    status.querySelector(".live-text").textContent = text;
  }

  function openSocket() {
    const socket = window.io({ withCredentials: true });
    sockets.push(socket);
    socket.on("connect", function () {
      connections += 1;
      showLive("live", "Live");
      onConnects.forEach(function (onConnect) { onConnect(socket, connections); });
    });
    // A dropped connection may be the server closing a login that ended: ask at once.
    socket.on("disconnect", function () {
      if (ended) return;
      showLive("paused", "Live updates paused: reconnecting…");
      checkSignIn();
    });
    socket.on("connect_error", function () {
      if (ended) return;
      checkSignIn();
      if (socket.active) {
        showLive("paused", "Live updates paused: reconnecting…");
      } else {
        showLive("off", "Live updates stopped: reload the page (you may need to sign in again).");
      }
    });
    return socket;
  }

  function connectLive(handlers, onConnect) {
    if (typeof window.io !== "function") {
      showLive("off", "Live updates unavailable: reload the page to try again.");
      return null;
    }
    const socket = sockets.length ? sockets[0] : openSocket();
    if (onConnect) {
      onConnects.push(onConnect);
      if (socket.connected) onConnect(socket, connections);
    }
    Object.keys(handlers).forEach(function (event) {
      socket.on(event, handlers[event]);
    });
    return socket;
  }

  document.addEventListener("DOMContentLoaded", function () {
    localizeTimes(document);
  });

  window.EscalationMode = {
    api: api,
    checkSignIn: checkSignIn,
    clearDraft: clearDraft,
    cloneTemplate: cloneTemplate,
    keepDraft: keepDraft,
    connectLive: connectLive,
    fill: fill,
    handoffOf: handoffOf,
    localTime: localTime,
    localizeTimes: localizeTimes,
    showFieldErrors: showFieldErrors,
    waitingText: waitingText,
  };
})();
