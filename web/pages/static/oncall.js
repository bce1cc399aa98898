/* /oncall: "Take this shift" posts an override for the caller over that segment (from now
   on when it has begun), "Remove" deletes an override, an admin creates, edits and deletes
   rotations (/api/v1/oncall/rotations), and the calendar link is created, shown once,
   rotated or revoked through /api/v1/me/calendar. */
"use strict";

(function () {
  const EM = window.EscalationMode;
  if (!EM) return;
  const viewer = Number(document.body.dataset.userId);

  function problem(result) {
    const details = (result.data && result.data.error && result.data.error.details) || {};
    const parts = Object.keys(details).map(function (field) {
      return field.replace(/_/g, " ") + ": " + [].concat(details[field]).join(" ");
    });
    return parts.length ? parts.join(" ") : result.message;
  }

  document.querySelectorAll(".take-shift").forEach(function (button) {
    button.addEventListener("click", async function () {
      const row = button.closest("tr");
      const status = document.getElementById("take-status");
      const now = new Date();
      const start = new Date(row.dataset.start) < now ? now.toISOString().replace(/\.\d+Z$/, "Z") : row.dataset.start;
      button.disabled = true;
      status.textContent = "Taking the shift…";
      const result = await EM.api("POST", "/api/v1/oncall/overrides", {
        rotation_id: Number(row.dataset.rotationId),
        user_id: viewer,
        start: start,
        end: row.dataset.end,
        reason: "Taken from the on-call page",
      });
      if (result.ok) {
        status.textContent = "You have this shift.";
        window.location.reload();
        return;
      }
      button.disabled = false;
      status.textContent = "Could not take the shift: " + problem(result);
    });
  });

  document.querySelectorAll(".delete-override").forEach(function (button) {
    button.addEventListener("click", async function () {
      const item = button.closest("li");
      const result = await EM.api("DELETE", "/api/v1/oncall/overrides/" + item.dataset.overrideId);
      if (result.ok || result.status === 204) window.location.reload();
      else button.textContent = "Could not remove: " + problem(result);
    });
  });

  const form = document.getElementById("rotation-form");
  if (form) rotationForm(form);

  function rotationForm(form) {
    const title = document.getElementById("rotation-form-title");
    const save = document.getElementById("rotation-save");
    const cancel = document.getElementById("rotation-cancel");
    const status = document.getElementById("rotation-status");
    const order = document.getElementById("rotation-order");
    const boxes = Array.from(form.querySelectorAll("input[name=participants]"));
    let turn = []; // participant ids, in the order ticked
    let editing = null; // the rotation being edited, or null for a new one

    function showOrder() {
      const names = turn.map(function (id) {
        const box = boxes.find(function (b) { return Number(b.value) === id; });
        return box ? box.dataset.name : "#" + id;
      });
      order.textContent = names.length ? names.join(" → ") : "nobody yet";
    }

    boxes.forEach(function (box) {
      box.addEventListener("change", function () {
        const id = Number(box.value);
        turn = turn.filter(function (other) { return other !== id; });
        if (box.checked) turn.push(id);
        showOrder();
      });
    });

    function fill(rotation) {
      editing = rotation;
      form.elements.name.value = rotation ? rotation.name : "";
      turn = rotation ? rotation.participants.map(function (p) { return p.id; }) : [];
      boxes.forEach(function (box) { box.checked = turn.indexOf(Number(box.value)) >= 0; });
      if (rotation) {
        form.elements.shift_length_days.value = rotation.shift_length_days;
        form.elements.handoff_time.value = rotation.handoff_time;
        form.elements.start_date.value = rotation.start_date;
        form.elements.timezone.value = rotation.timezone;
      }
      title.textContent = rotation ? "Edit rotation: " + rotation.name : "New rotation";
      save.textContent = rotation ? "Save rotation" : "Create rotation";
      cancel.hidden = !rotation;
      status.textContent = "";
      showOrder();
    }

    document.querySelectorAll(".edit-rotation").forEach(function (button) {
      button.addEventListener("click", function () {
        fill(JSON.parse(button.closest("td").dataset.rotation));
        form.elements.name.focus();
      });
    });
    cancel.addEventListener("click", function () { fill(null); });

    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const days = form.elements.shift_length_days.value.trim();
      const body = {
        name: form.elements.name.value,
        participants: turn,
        shift_length_days: /^\d+$/.test(days) ? Number(days) : days,
        handoff_time: form.elements.handoff_time.value,
        start_date: form.elements.start_date.value,
        timezone: form.elements.timezone.value.trim() || null,
      };
      save.disabled = true;
      status.textContent = editing ? "Saving…" : "Creating…";
      const result = editing
        ? await EM.api("PATCH", "/api/v1/oncall/rotations/" + editing.id, body)
        : await EM.api("POST", "/api/v1/oncall/rotations", body);
      save.disabled = false;
      if (result.ok) {
        status.textContent = editing ? "Rotation saved." : "Rotation created.";
        window.location.reload();
        return;
      }
      status.textContent = "Not saved: " + problem(result);
    });

    document.querySelectorAll(".delete-rotation").forEach(function (button) {
      button.addEventListener("click", async function () {
        const rotation = JSON.parse(button.closest("td").dataset.rotation);
        if (!window.confirm("Delete the rotation " + rotation.name + " and its overrides?")) return;
        const result = await EM.api("DELETE", "/api/v1/oncall/rotations/" + rotation.id);
        if (result.ok || result.status === 204) {
          window.location.reload();
          return;
        }
        document.getElementById("rotations-status").textContent =
          "Could not delete " + rotation.name + ": " + problem(result);
      });
    });
  }

  const create = document.getElementById("calendar-create");
  if (!create) return;
  const field = document.getElementById("calendar-url");
  const status = document.getElementById("calendar-status");
  create.addEventListener("click", async function () {
    status.textContent = "Creating…";
    const result = await EM.api("POST", "/api/v1/me/calendar");
    if (!result.ok) {
      status.textContent = "Could not create the link: " + problem(result);
      return;
    }
    field.value = result.data.url;
    field.hidden = false;
    field.select();
    create.textContent = "Rotate calendar link";
    status.textContent = "Copy this address now: it is not shown again. Any older link has stopped working.";
  });
  document.getElementById("calendar-revoke").addEventListener("click", async function () {
    const result = await EM.api("DELETE", "/api/v1/me/calendar");
    field.hidden = true;
    field.value = "";
    status.textContent = result.ok || result.status === 204 ? "Calendar link revoked." : problem(result);
  });
})();
