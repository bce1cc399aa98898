/* The session page, in small parts that share one state:
   - view: shows what the server says the viewer may do (`may`), never its own rules;
   - chat: bubbles, Enter sends, live `message.created`;
   - writebacks: the PSA ticket notes, live `writeback.created`;
   - handoff: status line, Claim, Resolve with an outcome, Escalate, live handoff events.
   Other scripts on the page can follow the handoff with
   EscalationMode.pilot.onHandoff(function (handoff, may) { ... }). */
"use strict";

(function () {
  const EM = window.EscalationMode;
  const root = document.getElementById("pilot");
  const sessionId = Number(root.dataset.sessionId);
  const viewer = {
    id: Number(root.dataset.viewerId),
    role: root.dataset.viewerRole,
    isTechnician: Number(root.dataset.technicianId) === Number(root.dataset.viewerId),
    mayEscalate: root.dataset.mayEscalate === "true",
  };
  const sessionPath = "/api/v1/sessions/" + sessionId;
  const handoffListeners = [];

  function byId(id) {
    return document.getElementById(id);
  }

  function setStatus(id, text) {
    const element = byId(id);
    if (element) element.textContent = text || "";
  }

  function show(id, visible) {
    const element = byId(id);
    if (element) element.hidden = !visible;
  }

  /* --- view: what the viewer may do now. The server decides (`may`, from
     models.sessions.actions_for, in the page and in GET /sessions/<id>); this only
     shows it. --- */

  const view = {
    handoff: null,
    may: JSON.parse(root.dataset.may),

    apply: function (handoff, may) {
      view.handoff = handoff || null;
      if (may) view.may = may;
      const allowed = view.may;
      const reason = allowed.write ? "" : allowed.read_only_reason;
      show("read-only-note", Boolean(reason));
      byId("read-only-note").querySelector('[data-field="reason"]').textContent = reason;
      show("message-form", !reason);
      show("psa-form", !reason);
      show("claim-button", allowed.claim);
      show("take-over-button", allowed.claim);
      show("resolve-button", allowed.resolve);
      if (!allowed.resolve) show("resolve-form", false);
      show("release-open", allowed.release);
      show("reassign-open", allowed.reassign);
      show("escalate-panel", allowed.escalate);
    },
  };

  /* --- chat --- */

  const chat = {
    list: byId("messages"),

    has: function (id) {
      return Boolean(chat.list.querySelector('li[data-message-id="' + Number(id) + '"]'));
    },

    add: function (message) {
      if (!message || (message.session_id !== undefined && Number(message.session_id) !== sessionId)) return;
      if (chat.has(message.id)) return;
      const item = EM.cloneTemplate("message-template");
      item.dataset.messageId = message.id;
      if (message.author && message.author.id === viewer.id) item.classList.add("mine");
      const time = item.querySelector('[data-field="time"]');
      time.setAttribute("datetime", message.created_at);
      time.title = message.created_at;
      EM.fill(item, {
        author: message.author ? message.author.name : "",
        body: message.body,
        time: EM.localTime(message.created_at),
      });
      // Oldest first; message ids grow with creation.
      const id = Number(message.id);
      const later = Array.from(chat.list.children).find(function (other) {
        return Number(other.dataset.messageId) > id;
      });
      chat.list.insertBefore(item, later || null);
      byId("no-messages").hidden = true;
      if (!later) chat.list.scrollTop = chat.list.scrollHeight;
    },

    send: async function () {
      const form = byId("message-form");
      const field = form.elements.body;
      const body = field.value.trim();
      if (!body) {
        setStatus("message-status", "Write a message first.");
        field.focus();
        return;
      }
      const button = form.querySelector('button[type="submit"]');
      if (button.disabled) return;
      button.disabled = true;
      setStatus("message-status", "Sending…");
      const result = await EM.api("POST", sessionPath + "/messages", { body: body });
      button.disabled = false;
      if (result.ok) {
        chat.add(result.data);
        field.value = "";
        EM.clearDraft(field);
        setStatus("message-status", "");
        field.focus();
      } else {
        setStatus("message-status", result.message);
        if (result.code === "claim_required") refresh();
      }
    },

    init: function () {
      const form = byId("message-form");
      EM.keepDraft(form.elements.body, "chat:" + sessionId);
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        chat.send();
      });
      // Enter sends; Shift+Enter (or composing with an input method) adds a new line.
      form.elements.body.addEventListener("keydown", function (event) {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          chat.send();
        }
      });
      chat.list.scrollTop = chat.list.scrollHeight;
    },
  };

  /* --- PSA writebacks: the panel and its form belong to psa.js; live ones arrive here --- */

  const writebacks = {
    add: function (writeback) {
      if (!writeback || Number(writeback.session_id) !== sessionId) return;
      if (EM.psa) EM.psa.show(writeback);
    },
  };

  /* --- the handoff: status, Claim, Resolve, Escalate --- */

  const handoffPart = {
    describe: function (handoff) {
      if (!handoff) return "Not escalated.";
      if (handoff.status === "open") {
        const who = handoff.escalated_by ? handoff.escalated_by.name : "the technician";
        return "Escalated by " + who + ": waiting for a senior to claim it.";
      }
      if (handoff.status === "claimed") {
        return "Claimed by " + (handoff.claimed_by ? handoff.claimed_by.name : "a senior") + ".";
      }
      return "Resolved.";
    },

    fact: function (id, text) {
      const row = byId(id);
      const value = row.querySelector("[data-field]");
      value.textContent = text || "";
      row.hidden = !text;
      return value;
    },

    /* Show the handoff; `may` is what the viewer may do with it now. Without it (the
       answer of an action, a live event) the page asks the server again. */
    show: function (handoff, may) {
      const status = byId("handoff-status");
      status.dataset.status = handoff ? handoff.status : "none";
      status.textContent = handoffPart.describe(handoff);
      if (handoff) {
        root.dataset.handoffId = handoff.id;
        const pkg = handoff.escalation_package || {};
        if (handoff.reason !== undefined) handoffPart.fact("brief-reason", handoff.reason);
        if (handoff.escalation_package !== undefined) handoffPart.fact("brief-notes", pkg.notes);
        const time = handoffPart.fact("brief-escalated", EM.localTime(handoff.created_at));
        time.setAttribute("datetime", handoff.created_at);
        if (handoff.outcome !== undefined) handoffPart.fact("brief-outcome", handoff.outcome);
      }
      const changed = !view.handoff || !handoff || view.handoff.status !== handoff.status ||
        (view.handoff.claimed_by || {}).id !== (handoff.claimed_by || {}).id;
      if (changed) handoffPart.settleTexts(handoff);
      view.apply(handoff, may);
      handoffListeners.forEach(function (listener) {
        listener(handoff, view.may);
      });
      if (!may) refresh();
    },

    /* Texts about an earlier state go when the holder or the status changes: the
       technician's "the seniors have been notified" once someone claims it, a release
       message once it is claimed again. */
    settleTexts: function (handoff) {
      const escalated = byId("escalate-status");
      if (escalated && (!handoff || handoff.status !== "open")) {
        escalated.textContent = handoff && handoff.status === "claimed" && viewer.isTechnician
          ? (handoff.claimed_by ? handoff.claimed_by.name : "A senior") + " has it: they will write here."
          : "";
      }
      setStatus("claim-status", "");
    },

    onEvent: function (payload) {
      const handoff = EM.handoffOf(payload);
      if (!handoff || Number(handoff.session_id) !== sessionId) return;
      // A summary (no package) updates the status; the page fetches the rest.
      if (handoff.escalation_package === undefined) {
        refresh();
        return;
      }
      handoffPart.show(handoff);
    },

    /* A senior handed this one to the viewer: say who and why (the timeline has the
       reason), as the queue page does. Another change of holder takes the text away. */
    onReassigned: async function (payload) {
      handoffPart.onEvent(payload);
      const handoff = EM.handoffOf(payload);
      const notice = byId("handed-to-you");
      if (!handoff || Number(handoff.session_id) !== sessionId) return;
      if ((handoff.claimed_by || {}).id !== viewer.id) {
        notice.hidden = true;
        return;
      }
      const result = await EM.api("GET", "/api/v1/escalations/" + Number(handoff.id) + "/timeline");
      const items = result.ok ? result.data.items : [];
      const change = items.filter(function (item) { return item.kind === "reassigned"; }).pop();
      const who = change && change.actor ? change.actor.name : "A senior";
      const why = change && change.details && change.details.reason ? change.details.reason : "";
      notice.textContent = who + " handed this to you" + (why ? ": " + why : ".");
      notice.hidden = false;
    },

    claim: async function (button) {
      button.disabled = true;
      setStatus("claim-status", "Claiming…");
      const result = await EM.api("POST", "/api/v1/escalations/" + root.dataset.handoffId + "/claim");
      button.disabled = false;
      if (result.ok) {
        handoffPart.show(result.data.handoff);
        // The chat is the first action the metric measures: straight there.
        const field = byId("message-body");
        if (field) {
          field.hidden = false;
          byId("message-form").hidden = false;
          field.focus();
          field.scrollIntoView({ block: "center" });
        }
        setStatus("claim-status", "You have it: write to the technician.");
        return;
      }
      // The loser of a race learns who won: "Already claimed by NAME" (said after the
      // page shows the new state, which clears texts about the old one).
      await refresh();
      setStatus("claim-status", result.message);
    },

    newIdempotencyKey: function () {
      const bytes = new Uint8Array(16);
      window.crypto.getRandomValues(bytes);
      return Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
    },

    escalate: async function (form) {
      const reason = form.elements.reason.value.trim();
      const notes = form.elements.notes.value.trim();
      if (!reason) {
        setStatus("escalate-status", "Say why you are escalating.");
        form.elements.reason.focus();
        return;
      }
      const button = form.querySelector('button[type="submit"]');
      button.disabled = true;
      setStatus("escalate-status", "Escalating…");
      const result = await EM.api(
        "POST",
        sessionPath + "/escalate",
        { reason: reason, notes: notes || null },
        { "Idempotency-Key": form.dataset.idempotencyKey }
      );
      button.disabled = false;
      if (result.ok) {
        // The next escalation of this session (after a resolve) is a new request.
        form.dataset.idempotencyKey = handoffPart.newIdempotencyKey();
        form.reset();
        EM.clearDraft(form.elements.reason);
        EM.clearDraft(form.elements.notes);
        handoffPart.show(result.data);
        setStatus("escalate-status", "Escalated: the seniors have been notified.");
        return;
      }
      if (result.code === "already_escalated") {
        setStatus("escalate-status", "This session is already escalated: the seniors have it.");
        refresh();
      } else {
        setStatus("escalate-status", result.message);
      }
    },

    resolve: async function (form) {
      const button = form.querySelector('button[type="submit"]');
      button.disabled = true;
      setStatus("resolve-status", "Resolving…");
      const outcome = form.elements.outcome.value.trim();
      const result = await EM.api(
        "POST",
        "/api/v1/escalations/" + root.dataset.handoffId + "/resolve",
        { outcome: outcome || null }
      );
      button.disabled = false;
      if (result.ok) {
        setStatus("resolve-status", "");
        form.reset();
        handoffPart.show(result.data);
      } else {
        setStatus("resolve-status", result.message);
      }
    },

    init: function () {
      byId("claim-button").addEventListener("click", function (event) {
        handoffPart.claim(event.currentTarget);
      });
      byId("take-over-button").addEventListener("click", function (event) {
        handoffPart.claim(event.currentTarget);
      });
      const resolveButton = byId("resolve-button");
      const resolveForm = byId("resolve-form");
      resolveButton.addEventListener("click", function () {
        resolveForm.hidden = false;
        resolveButton.setAttribute("aria-expanded", "true");
        resolveForm.elements.outcome.focus();
      });
      byId("resolve-cancel").addEventListener("click", function () {
        resolveForm.hidden = true;
        resolveButton.setAttribute("aria-expanded", "false");
        resolveButton.focus();
      });
      resolveForm.addEventListener("submit", function (event) {
        event.preventDefault();
        handoffPart.resolve(resolveForm);
      });
      const escalateForm = byId("escalate-form");
      if (escalateForm) {
        EM.keepDraft(escalateForm.elements.reason, "escalate-reason:" + sessionId);
        EM.keepDraft(escalateForm.elements.notes, "escalate-notes:" + sessionId);
        escalateForm.addEventListener("submit", function (event) {
          event.preventDefault();
          handoffPart.escalate(escalateForm);
        });
      }
    },
  };

  /* --- catching up and live updates --- */

  async function refresh() {
    const result = await EM.api("GET", sessionPath);
    if (!result.ok) return;
    (result.data.messages || []).forEach(chat.add);
    (result.data.writebacks || []).forEach(writebacks.add);
    handoffPart.show(result.data.handoff, result.data.may);
  }

  chat.init();
  handoffPart.init();

  EM.pilot = {
    onHandoff: function (listener) {
      handoffListeners.push(listener);
    },
    refresh: refresh,
    show: function (handoff, may) {
      handoffPart.show(handoff, may);
    },
    viewer: viewer,
  };

  EM.connectLive(
    {
      "message.created": chat.add,
      "writeback.created": writebacks.add,
      "handoff.created": handoffPart.onEvent,
      "handoff.claimed": handoffPart.onEvent,
      "handoff.resolved": handoffPart.onEvent,
      "handoff.released": handoffPart.onEvent,
      "handoff.reassigned": handoffPart.onReassigned,
    },
    function (socket) {
      socket.emit("session.watch", { session_id: sessionId });
      refresh();
    }
  );
})();
