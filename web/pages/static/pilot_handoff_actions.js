/* Release and Reassign on the session page (pages/_handoff_actions.html), opened from the
   brief's Release… and Reassign… buttons. Which of them shows is the server's answer
   (`may` in GET /sessions/<id>, applied by pilot.js); this script only runs the forms.
   What happened is said in the brief's status line, which stays in sight. */
"use strict";

(function () {
  const EM = window.EscalationMode;
  const panel = document.getElementById("handoff-actions");
  if (!panel || !EM) return;
  const handoffId = Number(panel.dataset.handoffId);
  const forms = {
    release: document.getElementById("release-form"),
    reassign: document.getElementById("reassign-form"),
  };
  const openers = {
    release: document.getElementById("release-open"),
    reassign: document.getElementById("reassign-open"),
  };

  function say(text) {
    const status = document.getElementById("claim-status");
    if (status) status.textContent = text || "";
  }

  function close(which) {
    const form = forms[which];
    if (!form) return;
    form.hidden = true;
    form.reset();
    if (openers[which]) openers[which].setAttribute("aria-expanded", "false");
  }

  function open(which) {
    Object.keys(forms).forEach(function (other) { if (other !== which) close(other); });
    forms[which].hidden = false;
    openers[which].setAttribute("aria-expanded", "true");
    forms[which].querySelector("select, textarea").focus();
  }

  Object.keys(forms).forEach(function (which) {
    if (!openers[which]) return;
    openers[which].addEventListener("click", function () {
      if (forms[which].hidden) open(which);
      else close(which);
    });
    forms[which].querySelector('[data-action="cancel"]').addEventListener("click", function () {
      close(which);
      openers[which].focus();
    });
  });

  // Whenever the handoff changes (here or elsewhere), no stale form or text stays open.
  if (EM.pilot) {
    EM.pilot.onHandoff(function (handoff, may) {
      if (!may || !may.release) close("release");
      if (!may || !may.reassign) close("reassign");
    });
  }

  async function act(which, body, done) {
    say("");
    const result = await EM.api("POST", "/api/v1/escalations/" + handoffId + "/" + which, body);
    if (!result.ok) {
      say(result.message || "That did not work. Try again.");
      return;
    }
    close(which);
    if (EM.pilot) EM.pilot.show(result.data);
    say(done(result.data));
    if (EM.refreshTimeline) EM.refreshTimeline();
  }

  forms.release.addEventListener("submit", function (event) {
    event.preventDefault();
    const reason = forms.release.elements.reason.value.trim();
    if (!reason) {
      say("Say why you are releasing it.");
      return;
    }
    act("release", { reason: reason }, function () { return "Released: it is back on the queue."; });
  });

  forms.reassign.addEventListener("submit", function (event) {
    event.preventDefault();
    const userId = Number(forms.reassign.elements.user_id.value);
    const reason = forms.reassign.elements.reason.value.trim();
    if (!userId) {
      say("Choose who should take it.");
      return;
    }
    if (!reason) {
      say("Say why it goes to them: they read it.");
      return;
    }
    act("reassign", { user_id: userId, reason: reason }, function (handoff) {
      return "Reassigned to " + (handoff.claimed_by ? handoff.claimed_by.name : "them") + ": they have been told.";
    });
  });
})();
