/* Never miss an arrival: an unread count in the tab title and the favicon while the page
   is out of sight, a desktop notification (only after the senior asked for them with the
   button), an optional sound, and an announcement for screen readers. Also the senior's
   email preferences form (PATCH /api/v1/me). queue.js calls QueueAlerts.arrived(). */
"use strict";

(function () {
  const EM = window.EscalationMode;
  const SOUND_KEY = "escalation-mode.sound";
  const baseTitle = document.title;
  const announcer = document.getElementById("announcer");
  const notifyButton = document.getElementById("notify-button");
  const notifyState = document.getElementById("notify-state");
  const soundToggle = document.getElementById("sound-toggle");
  const icon = document.querySelector('link[rel="icon"]');
  const plainIcon = icon ? icon.getAttribute("href") : "";
  // Each priority as an announcement says it ("priority 1"), from the server's queue config.
  const PRIORITY_WORDS = JSON.parse(document.getElementById("queue").dataset.config).priority_words || {};
  let unread = 0;

  function outOfSight() {
    return document.hidden || !document.hasFocus();
  }

  function badgeIcon(count) {
    const canvas = document.createElement("canvas");
    canvas.width = 32;
    canvas.height = 32;
    const context = canvas.getContext("2d");
    if (!context) return plainIcon;
    context.fillStyle = "#b3261e";
    context.beginPath();
    context.arc(16, 16, 16, 0, 2 * Math.PI);
    context.fill();
    context.fillStyle = "#ffffff";
    context.font = "bold 20px sans-serif";
    context.textAlign = "center";
    context.textBaseline = "middle";
    context.fillText(count > 9 ? "9+" : String(count), 16, 17);
    return canvas.toDataURL("image/png");
  }

  function showUnread() {
    document.title = unread ? "(" + unread + ") " + baseTitle : baseTitle;
    if (icon) icon.setAttribute("href", unread ? badgeIcon(unread) : plainIcon);
  }

  function markRead() {
    if (!unread) return;
    unread = 0;
    showUnread();
  }
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) markRead();
  });
  window.addEventListener("focus", markRead);

  /* --- desktop notifications ------------------------------------------------------- */

  const canNotify = "Notification" in window;

  function showNotifyState() {
    if (!canNotify) {
      notifyState.textContent = "This browser cannot show desktop notifications.";
      notifyState.hidden = false;
      return;
    }
    const permission = window.Notification.permission;
    notifyButton.hidden = permission !== "default";
    notifyState.hidden = permission === "default";
    notifyState.textContent = permission === "granted"
      ? "Desktop notifications are on."
      : "Desktop notifications are blocked: allow them in the browser's site settings.";
  }

  notifyButton.addEventListener("click", async function () {
    try {
      await window.Notification.requestPermission();
    } catch (error) {
      /* an old browser's callback form: the state below still tells */
    }
    showNotifyState();
  });
  showNotifyState();

  function notify(handoff, headline) {
    if (!canNotify || window.Notification.permission !== "granted" || !document.hidden) return;
    const body = [handoff.customer, handoff.reason].filter(Boolean).join(" · ");
    try {
      const notice = new window.Notification(headline, { body: body.slice(0, 240), tag: "handoff-" + handoff.id });
      notice.addEventListener("click", function () {
        window.focus();
        notice.close();
      });
    } catch (error) {
      /* some platforms only allow notifications from a service worker: the title count still shows */
    }
  }

  /* --- sound ---------------------------------------------------------------------- */

  soundToggle.checked = window.localStorage.getItem(SOUND_KEY) === "on";
  soundToggle.addEventListener("change", function () {
    window.localStorage.setItem(SOUND_KEY, soundToggle.checked ? "on" : "off");
    if (soundToggle.checked) chime();
  });

  let audio = null;
  function chime() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    audio = audio || new Context();
    const start = audio.currentTime;
    [880, 1320].forEach(function (frequency, index) {
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, start + index * 0.18);
      gain.gain.exponentialRampToValueAtTime(0.2, start + index * 0.18 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + index * 0.18 + 0.16);
      tone.connect(gain).connect(audio.destination);
      tone.start(start + index * 0.18);
      tone.stop(start + index * 0.18 + 0.17);
    });
  }

  /* --- one arrival ------------------------------------------------------------------ */

  function arrived(handoff) {
    const priority = PRIORITY_WORDS[handoff.priority] || "";
    const headline = "New escalation" + (priority ? ", " + priority : "") + ": " + handoff.title;
    announcer.textContent = headline + (handoff.customer ? ", for " + handoff.customer : "");
    if (outOfSight()) {
      unread += 1;
      showUnread();
    }
    notify(handoff, headline);
    if (soundToggle.checked) {
      try {
        chime();
      } catch (error) {
        /* no audio device: the other alerts still went out */
      }
    }
  }

  /* A senior handed this one to the viewer: said aloud, counted in the tab's title and
     favicon while out of sight, and a desktop notification, like an arrival. */
  function handedOver(handoff, headline) {
    announcer.textContent = headline;
    if (outOfSight()) {
      unread += 1;
      showUnread();
    }
    notify(handoff, headline);
  }

  window.QueueAlerts = {
    arrived: arrived,
    handedOver: handedOver,
    unread: function () { return unread; },
  };

  /* --- email preferences ------------------------------------------------------------- */

  const form = document.getElementById("preferences-form");
  const status = document.getElementById("preferences-status");
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const quiet = form.elements.quiet.checked;
    const body = {
      notify_email: form.elements.notify_email.value,
      quiet_hours: quiet ? { start: form.elements.start.value, end: form.elements.end.value } : null,
      timezone: form.elements.timezone.value.trim() || null,
    };
    status.textContent = "Saving…";
    const result = await EM.api("PATCH", "/api/v1/me", body);
    if (result.ok) {
      status.textContent = "Saved.";
      return;
    }
    const details = (result.data && result.data.error && result.data.error.details) || {};
    const problems = Object.keys(details).map(function (field) {
      return field.replace("_", " ") + ": " + [].concat(details[field]).join(" ");
    });
    status.textContent = problems.length ? problems.join(" ") : result.message;
  });
})();
