/* The session page: live chat, Send, Escalate and Resolve (the PSA writeback: psa.js). */
"use strict";

(function () {
  const EM = window.EscalationMode;
  const root = document.getElementById("pilot");
  const sessionId = Number(root.dataset.sessionId);
  const viewerId = Number(root.dataset.viewerId);
  const messages = document.getElementById("messages");
  const noMessages = document.getElementById("no-messages");
  const handoffStatus = document.getElementById("handoff-status");
  const sessionPath = "/api/v1/sessions/" + sessionId;

  /* --- chat --- */

  function hasMessage(id) {
    return Boolean(messages.querySelector('li[data-message-id="' + Number(id) + '"]'));
  }

  function addMessage(message) {
    if (!message || (message.session_id !== undefined && Number(message.session_id) !== sessionId)) return;
    if (hasMessage(message.id)) return;
    const item = EM.cloneTemplate("message-template");
    item.dataset.messageId = message.id;
    if (message.author && message.author.id === viewerId) item.classList.add("mine");
    const time = item.querySelector('[data-field="time"]');
    time.setAttribute("datetime", message.created_at);
    EM.fill(item, {
      author: message.author ? message.author.name : "",
      body: message.body,
      time: EM.localTime(message.created_at),
    });
    // Oldest first; message ids grow with creation.
    const id = Number(message.id);
    const later = Array.from(messages.children).find(function (other) {
      return Number(other.dataset.messageId) > id;
    });
    messages.insertBefore(item, later || null);
    noMessages.hidden = true;
  }

  function setStatus(id, text) {
    const element = document.getElementById(id);
    if (element) element.textContent = text || "";
  }

  const messageForm = document.getElementById("message-form");
  messageForm.addEventListener("submit", async function (event) {
    event.preventDefault();
    const field = messageForm.elements.body;
    const body = field.value.trim();
    if (!body) {
      setStatus("message-status", "Write a message first.");
      field.focus();
      return;
    }
    const button = messageForm.querySelector('button[type="submit"]');
    button.disabled = true;
    setStatus("message-status", "Sending…");
    const result = await EM.api("POST", sessionPath + "/messages", { body: body });
    button.disabled = false;
    if (result.ok) {
      addMessage(result.data);
      field.value = "";
      setStatus("message-status", "");
      field.focus();
    } else {
      setStatus("message-status", result.message);
    }
  });

  /* --- the handoff's status --- */

  function describeHandoff(handoff) {
    if (!handoff) return "Not escalated.";
    if (handoff.status === "open") {
      const who = handoff.escalated_by ? handoff.escalated_by.name : "the technician";
      return "Escalated by " + who + ": waiting for a senior to claim it.";
    }
    if (handoff.status === "claimed") {
      return "Claimed by " + (handoff.claimed_by ? handoff.claimed_by.name : "a senior") + ".";
    }
    return "Resolved.";
  }

  function showHandoff(handoff) {
    handoffStatus.dataset.status = handoff ? handoff.status : "none";
    handoffStatus.textContent = describeHandoff(handoff);
    if (handoff) root.dataset.handoffId = handoff.id;
    const escalatePanel = document.getElementById("escalate-panel");
    if (escalatePanel && handoff && handoff.status !== "resolved") escalatePanel.hidden = true;
  }

  function onHandoffEvent(payload) {
    const handoff = EM.handoffOf(payload);
    if (handoff && Number(handoff.session_id) === sessionId) showHandoff(handoff);
  }

  /* --- Escalate (the session's technician) --- */

  const escalateForm = document.getElementById("escalate-form");
  if (escalateForm) {
    escalateForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      const reason = escalateForm.elements.reason.value.trim();
      const notes = escalateForm.elements.notes.value.trim();
      if (!reason) {
        setStatus("escalate-status", "Say why you are escalating.");
        escalateForm.elements.reason.focus();
        return;
      }
      const button = escalateForm.querySelector('button[type="submit"]');
      button.disabled = true;
      setStatus("escalate-status", "Escalating…");
      const result = await EM.api(
        "POST",
        sessionPath + "/escalate",
        { reason: reason, notes: notes || null },
        { "Idempotency-Key": escalateForm.dataset.idempotencyKey }
      );
      if (result.ok) {
        showHandoff(result.data);
        setStatus("escalate-status", "Escalated: the seniors have been notified.");
        return;
      }
      button.disabled = false;
      if (result.code === "already_escalated") {
        setStatus("escalate-status", "This session is already escalated: the seniors have it.");
        refresh();
      } else {
        setStatus("escalate-status", result.message);
      }
    });
  }

  /* --- Resolve (the claimer or an admin) --- */

  const resolveButton = document.getElementById("resolve-button");
  if (resolveButton) {
    resolveButton.addEventListener("click", async function () {
      resolveButton.disabled = true;
      const result = await EM.api("POST", "/api/v1/escalations/" + root.dataset.handoffId + "/resolve");
      if (result.ok) {
        showHandoff(result.data);
        resolveButton.hidden = true;
        setStatus("resolve-status", "");
      } else {
        resolveButton.disabled = false;
        setStatus("resolve-status", result.message);
      }
    });
  }

  /* The PSA writeback lives in psa.js. */

  /* --- live updates and catching up --- */

  async function refresh() {
    const result = await EM.api("GET", sessionPath);
    if (!result.ok) return;
    (result.data.messages || []).forEach(addMessage);
    showHandoff(result.data.handoff);
  }

  EM.connectLive(
    {
      "message.created": addMessage,
      "handoff.created": onHandoffEvent,
      "handoff.claimed": onHandoffEvent,
      "handoff.resolved": onHandoffEvent,
    },
    function (socket) {
      socket.emit("session.watch", { session_id: sessionId });
      refresh();
    }
  );
})();
