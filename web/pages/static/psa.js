/* The session page's PSA ticket: write a note back, and follow each note's delivery to the
   PSA live (queued, retrying, sent with the PSA's note id, failed with why, not connected).
   The page asks the API while any note is still on its way. Mirrors pages/_psa.html. */
"use strict";

(function () {
  const EM = window.EscalationMode;
  const panel = document.getElementById("psa");
  if (!panel) return;
  const path = "/api/v1/sessions/" + panel.dataset.sessionId;
  const list = document.getElementById("writebacks");
  const form = document.getElementById("psa-form");
  const POLL_MS = 1500;
  let polling = null;

  function stateText(delivery) {
    switch (delivery.status) {
      case "sent":
        return "Sent to the PSA" + (delivery.psa_note_id ? " (note #" + delivery.psa_note_id + ")" : "");
      case "pending":
        return "Queued for the PSA";
      case "retrying":
        return "Retrying: " + (delivery.last_error || "the PSA did not answer");
      case "failed":
        return "Failed: " + (delivery.last_error || "unknown reason");
      default:
        return "Not connected: kept here only, no PSA is connected";
    }
  }

  function onTheWay(status) {
    return status === "pending" || status === "retrying";
  }

  function itemFor(writeback) {
    let item = list.querySelector('li[data-writeback-id="' + writeback.id + '"]');
    if (item) return item;
    item = document.createElement("li");
    item.dataset.writebackId = String(writeback.id);
    const meta = document.createElement("span");
    meta.className = "writeback-meta";
    meta.textContent = (writeback.author ? writeback.author.name : "") + " · " + EM.localTime(writeback.created_at);
    const text = document.createElement("span");
    text.className = "writeback-note";
    text.textContent = writeback.note;
    const state = document.createElement("span");
    state.className = "writeback-state";
    item.append(meta, " ", text, " ", state);
    list.appendChild(item);
    return item;
  }

  function show(writeback) {
    const state = itemFor(writeback).querySelector(".writeback-state");
    const delivery = writeback.delivery || { status: "pending" };
    state.dataset.status = delivery.status;
    state.textContent = stateText(delivery);
    if (onTheWay(delivery.status)) follow();
  }

  // pilot.js hands over the writebacks other viewers make (`writeback.created`).
  EM.psa = { show: show };

  async function refresh() {
    const result = await EM.api("GET", path + "/psa-writebacks");
    if (result.ok) result.data.items.forEach(show);
    const waiting = list.querySelectorAll(".writeback-state").length &&
      Array.from(list.querySelectorAll(".writeback-state")).some(function (el) { return onTheWay(el.dataset.status); });
    polling = waiting ? setTimeout(refresh, POLL_MS) : null;
  }

  function follow() {
    if (polling === null) polling = setTimeout(refresh, POLL_MS);
  }

  // No form without a connected PSA: the notes written before still show and follow.
  if (form) form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const field = form.elements.note;
    const status = document.getElementById("psa-status");
    const note = field.value.trim();
    if (!note) {
      status.textContent = "Write the note first.";
      field.focus();
      return;
    }
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    status.textContent = "Writing back…";
    const result = await EM.api("POST", path + "/psa-writeback", { note: note });
    button.disabled = false;
    if (!result.ok) {
      status.textContent = result.message;
      return;
    }
    show(result.data);
    field.value = "";
    status.textContent = result.data.delivery.status === "not_connected"
      ? "Saved here; no PSA is connected."
      : "Saved; sending it to the PSA ticket.";
    if (onTheWay(result.data.delivery.status)) follow();
  });

  if (Array.from(list.querySelectorAll(".writeback-state")).some(function (el) { return onTheWay(el.dataset.status); })) {
    follow();
  }
})();
