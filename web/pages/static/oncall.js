/* /oncall: "Take this shift" posts an override for the caller over that segment (from now
   on when it has begun), "Remove" deletes an override, and the calendar link is created,
   shown once, rotated or revoked through /api/v1/me/calendar. For admins, the rotation form
   creates and edits a rotation (participants in turn, reordered with Up and Down), and
   "Delete" removes one once confirmed, all through /api/v1/oncall/rotations. After each
   change the rotations, the schedule, the overrides and "on call now" are drawn again from
   the API (the server's clock decides what "now" is). Everything user-supplied is written
   with textContent. */
"use strict";

(function () {
  const EM = window.EscalationMode;
  if (!EM) return;
  const viewer = Number(document.body.dataset.userId);
  const rotationsPanel = document.getElementById("rotations-panel");
  const schedulePanel = document.getElementById("schedule-panel");
  const overridesPanel = document.getElementById("overrides-panel");
  const isAdmin = rotationsPanel.hasAttribute("data-admin");
  const canTake = schedulePanel.hasAttribute("data-can-take");
  const scheduleDays = Number(schedulePanel.dataset.days) || 14;
  const DAY_MS = 24 * 60 * 60 * 1000;

  function problem(result) {
    const details = (result.data && result.data.error && result.data.error.details) || {};
    const parts = Object.keys(details).map(function (field) {
      return field.replace(/_/g, " ") + ": " + [].concat(details[field]).join(" ");
    });
    return parts.length ? parts.join(" ") : result.message;
  }

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function timeElement(iso) {
    const node = element("time", iso);
    node.setAttribute("datetime", iso);
    node.setAttribute("data-local-time", "");
    return node;
  }

  function isoSeconds(date) {
    return date.toISOString().replace(/\.\d+Z$/, "Z");
  }

  /* --- drawing what the server says ------------------------------------------------ */

  let rotations = [];
  const rotationsData = document.getElementById("rotations-data");
  if (rotationsData) rotations = JSON.parse(rotationsData.textContent);

  function rotationRow(rotation) {
    const row = element("tr");
    row.dataset.rotationId = rotation.id;
    const name = element("th", rotation.name);
    name.scope = "row";
    const days = rotation.shift_length_days;
    row.append(
      name,
      element("td", rotation.participants.map(function (p) { return p.name; }).join(" → ")),
      element("td", days + " day" + (days !== 1 ? "s" : "")),
      element("td", rotation.handoff_time + " " + rotation.timezone),
      element("td", rotation.start_date)
    );
    if (isAdmin) {
      const actions = element("td", null, "row-actions");
      const edit = element("button", "Edit", "button");
      edit.type = "button";
      edit.dataset.action = "edit-rotation";
      edit.setAttribute("aria-label", "Edit rotation " + rotation.name);
      const remove = element("button", "Delete", "button danger");
      remove.type = "button";
      remove.dataset.action = "delete-rotation";
      remove.setAttribute("aria-label", "Delete rotation " + rotation.name);
      actions.append(edit, " ", remove);
      row.append(actions);
    }
    return row;
  }

  function drawRotations(items) {
    rotations = items;
    const body = document.querySelector("#rotations tbody");
    body.replaceChildren.apply(body, items.map(rotationRow));
    rotationsPanel.querySelector("[data-part='rotations']").hidden = !items.length;
    rotationsPanel.querySelector("[data-part='no-rotations']").hidden = Boolean(items.length);
  }

  function segmentRow(segment) {
    const row = element("tr", null, "segment segment-" + segment.source);
    row.dataset.source = segment.source;
    row.dataset.rotationId = segment.rotation.id;
    row.dataset.start = segment.start;
    row.dataset.end = segment.end;
    const who = element("td");
    if (segment.user) {
      who.textContent = segment.user.name;
      if (segment.source === "override") who.append(" ", element("span", "override", "badge"));
    } else {
      who.append(element("strong", "Nobody (gap)", "gap"));
    }
    const from = element("td");
    from.append(timeElement(segment.start));
    const until = element("td");
    until.append(timeElement(segment.end));
    const action = element("td");
    if (canTake && (!segment.user || segment.user.id !== viewer)) {
      const take = element("button", "Take this shift", "button take-shift");
      take.type = "button";
      action.append(take);
    }
    row.append(element("td", segment.rotation.name), who, from, until, action);
    return row;
  }

  function drawSchedule(items) {
    const body = document.querySelector("#schedule tbody");
    body.replaceChildren.apply(body, items.map(segmentRow));
    schedulePanel.querySelector("[data-part='schedule']").hidden = !items.length;
    schedulePanel.querySelector("[data-part='no-schedule']").hidden = Boolean(items.length);
    EM.localizeTimes(body);
  }

  function overrideItem(item) {
    const li = element("li");
    li.dataset.overrideId = item.id;
    li.dataset.rotationId = item.rotation_id;
    li.append(item.user.name + " covers ", timeElement(item.start), " – ", timeElement(item.end));
    if (item.reason) li.append(" (" + item.reason + ")");
    if (isAdmin || item.user.id === viewer) {
      const remove = element("button", "Remove", "button small delete-override");
      remove.type = "button";
      li.append(" ", remove);
    }
    return li;
  }

  function drawOverrides(items) {
    const list = document.getElementById("overrides");
    list.replaceChildren.apply(list, items.map(overrideItem));
    list.hidden = !items.length;
    overridesPanel.querySelector("[data-part='no-overrides']").hidden = Boolean(items.length);
    EM.localizeTimes(list);
  }

  function drawNow(now) {
    const line = document.getElementById("oncall-now");
    line.replaceChildren();
    if (now.on_call.length) {
      line.append("On call now: ");
      now.on_call.forEach(function (entry, index) {
        if (index) line.append(", ");
        line.append(element("strong", entry.user.name), " (" + entry.rotation.name + ")");
      });
    } else {
      line.append("Nobody is on call now.");
    }
    line.append(" " + (now.business_hours ? "Inside" : "Outside") + " business hours.");
  }

  /* Everything the page shows, again: "now" is the server's, the schedule runs from then
     for as many days as the page first showed. Resolves to an error text, or "". */
  async function redraw() {
    const now = await EM.api("GET", "/api/v1/oncall/now");
    if (!now.ok) return problem(now);
    const from = now.data.at;
    const to = isoSeconds(new Date(Date.parse(from) + scheduleDays * DAY_MS));
    const range = "from=" + encodeURIComponent(from) + "&to=" + encodeURIComponent(to);
    const answers = await Promise.all([
      EM.api("GET", "/api/v1/oncall/rotations"),
      EM.api("GET", "/api/v1/oncall/shifts?" + range),
      EM.api("GET", "/api/v1/oncall/overrides?from=" + encodeURIComponent(from)),
    ]);
    const failed = answers.find(function (answer) { return !answer.ok; });
    if (failed) return problem(failed);
    drawNow(now.data);
    drawRotations(answers[0].data.items);
    drawSchedule(answers[1].data.items);
    drawOverrides(answers[2].data.items);
    return "";
  }

  /* --- take a shift, remove an override (rows may be drawn again: delegated) ---------- */

  schedulePanel.addEventListener("click", async function (event) {
    const button = event.target.closest(".take-shift");
    if (!button) return;
    const row = button.closest("tr");
    const status = document.getElementById("take-status");
    const now = new Date();
    const start = new Date(row.dataset.start) < now ? isoSeconds(now) : row.dataset.start;
    button.disabled = true;
    status.textContent = "Taking the shift…";
    const result = await EM.api("POST", "/api/v1/oncall/overrides", {
      rotation_id: Number(row.dataset.rotationId),
      user_id: viewer,
      start: start,
      end: row.dataset.end,
      reason: "Taken from the on-call page",
    });
    if (!result.ok) {
      button.disabled = false;
      status.textContent = "Could not take the shift: " + problem(result);
      return;
    }
    const failed = await redraw();
    status.textContent = failed ? "You have this shift; reload to see it: " + failed : "You have this shift.";
  });

  overridesPanel.addEventListener("click", async function (event) {
    const button = event.target.closest(".delete-override");
    if (!button) return;
    const item = button.closest("li");
    button.disabled = true;
    const result = await EM.api("DELETE", "/api/v1/oncall/overrides/" + item.dataset.overrideId);
    if (result.ok || result.status === 404) {
      await redraw();
      return;
    }
    button.disabled = false;
    button.textContent = "Could not remove: " + problem(result);
  });

  /* --- the calendar link ------------------------------------------------------------ */

  const create = document.getElementById("calendar-create");
  if (create) {
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
  }

  if (!isAdmin) return;

  /* --- admins: the rotation form ---------------------------------------------------- */

  const form = document.getElementById("rotation-form");
  const title = document.getElementById("rotation-form-title");
  const save = document.getElementById("rotation-save");
  const cancel = document.getElementById("rotation-cancel");
  const formStatus = document.getElementById("rotation-status");
  const listStatus = document.getElementById("rotations-status");
  const list = document.getElementById("participant-list");
  const none = document.getElementById("participant-none");
  const choice = document.getElementById("participant-choice");
  const add = document.getElementById("participant-add");
  const seniors = Array.from(choice.options).map(function (option) {
    return { id: Number(option.value), name: option.textContent };
  });
  const defaults = {
    name: "", shift_length_days: "7", handoff_time: "09:00",
    timezone: form.elements.timezone.value, start_date: form.elements.start_date.value,
  };
  let editing = null; // the rotation being edited, or null for a new one
  let chosen = []; // [{id, name}] in turn

  function participantItem(person, index) {
    const li = element("li", null, "participant");
    li.dataset.userId = person.id;
    const active = seniors.some(function (senior) { return senior.id === person.id; });
    li.append(element("span", person.name, "participant-name"));
    if (!active) li.append(" ", element("span", "no longer an active engineer or admin", "badge"));
    [
      ["up", "Up", "Move " + person.name + " up", index === 0],
      ["down", "Down", "Move " + person.name + " down", index === chosen.length - 1],
      ["remove", "Remove", "Remove " + person.name, false],
    ].forEach(function (spec) {
      const button = element("button", spec[1], "button small");
      button.type = "button";
      button.dataset.move = spec[0];
      button.setAttribute("aria-label", spec[2]);
      button.disabled = spec[3];
      li.append(" ", button);
    });
    return li;
  }

  /* Draw the chosen participants; `focus` = [user id, button] to keep the keyboard there. */
  function drawParticipants(focus) {
    list.replaceChildren.apply(list, chosen.map(participantItem));
    none.hidden = Boolean(chosen.length);
    const taken = new Set(chosen.map(function (person) { return person.id; }));
    choice.replaceChildren.apply(choice, seniors.filter(function (senior) {
      return !taken.has(senior.id);
    }).map(function (senior) {
      const option = element("option", senior.name);
      option.value = senior.id;
      return option;
    }));
    choice.disabled = add.disabled = !choice.options.length;
    if (!focus) return;
    const item = list.querySelector('[data-user-id="' + focus[0] + '"]');
    const target = item && item.querySelector('[data-move="' + focus[1] + '"]');
    if (target && !target.disabled) target.focus();
    else if (item) item.querySelector("[data-move]:not(:disabled)").focus();
    else if (!add.disabled) choice.focus();
  }

  add.addEventListener("click", function () {
    const person = seniors.find(function (senior) { return senior.id === Number(choice.value); });
    if (!person) return;
    chosen.push(person);
    drawParticipants();
    formStatus.textContent = person.name + " added, turn " + chosen.length + ".";
    (add.disabled ? list.querySelector("li:last-child [data-move='remove']") : choice).focus();
  });

  list.addEventListener("click", function (event) {
    const button = event.target.closest("[data-move]");
    if (!button) return;
    const id = Number(button.closest("li").dataset.userId);
    const index = chosen.findIndex(function (person) { return person.id === id; });
    const person = chosen[index];
    const move = button.dataset.move;
    if (move === "remove") {
      chosen.splice(index, 1);
      const next = chosen[Math.min(index, chosen.length - 1)];
      drawParticipants(next ? [next.id, "remove"] : ["", ""]);
      formStatus.textContent = person.name + " removed.";
      return;
    }
    const to = move === "up" ? index - 1 : index + 1;
    if (to < 0 || to >= chosen.length) return;
    chosen.splice(index, 1);
    chosen.splice(to, 0, person);
    drawParticipants([id, move]);
    formStatus.textContent = person.name + " is now turn " + (to + 1) + ".";
  });

  function fillForm(rotation) {
    const values = rotation || defaults;
    form.elements.name.value = values.name;
    form.elements.shift_length_days.value = String(values.shift_length_days);
    form.elements.handoff_time.value = values.handoff_time;
    form.elements.timezone.value = values.timezone;
    form.elements.start_date.value = values.start_date;
    chosen = rotation ? rotation.participants.map(function (p) { return { id: p.id, name: p.name }; }) : [];
    drawParticipants();
    EM.showFieldErrors(form, {});
  }

  function startEditing(rotation) {
    editing = rotation;
    fillForm(rotation);
    title.textContent = "Edit " + rotation.name;
    save.textContent = "Save changes";
    cancel.hidden = false;
    formStatus.textContent = "";
    form.scrollIntoView({ block: "start" });
    form.elements.name.focus();
  }

  function stopEditing() {
    editing = null;
    fillForm(null);
    title.textContent = "New rotation";
    save.textContent = "Create rotation";
    cancel.hidden = true;
  }

  cancel.addEventListener("click", function () {
    const row = editing && document.querySelector('#rotations tr[data-rotation-id="' + editing.id + '"]');
    stopEditing();
    formStatus.textContent = "Editing cancelled.";
    const back = row && row.querySelector("[data-action='edit-rotation']");
    (back || form.elements.name).focus();
  });

  form.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && editing) cancel.click();
  });

  function wholeNumber(text) {
    const trimmed = text.trim();
    return /^-?\d+$/.test(trimmed) ? Number(trimmed) : trimmed === "" ? null : trimmed;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const body = {
      name: form.elements.name.value,
      participants: chosen.map(function (person) { return person.id; }),
      shift_length_days: wholeNumber(form.elements.shift_length_days.value),
      handoff_time: form.elements.handoff_time.value,
      start_date: form.elements.start_date.value,
      timezone: form.elements.timezone.value.trim(),
    };
    save.disabled = true;
    formStatus.textContent = editing ? "Saving…" : "Creating…";
    const result = editing
      ? await EM.api("PATCH", "/api/v1/oncall/rotations/" + editing.id, body)
      : await EM.api("POST", "/api/v1/oncall/rotations", body);
    save.disabled = false;
    if (result.status === 404 && editing) {
      const gone = editing.name;
      stopEditing();
      const failed = await redraw();
      formStatus.textContent = gone + " no longer exists (deleted meanwhile)." + (failed ? " " + failed : "");
      return;
    }
    if (!result.ok) {
      const unplaced = EM.showFieldErrors(form, result.status === 422 ? result.details : {});
      formStatus.textContent = [result.message].concat(unplaced).join(" ");
      const invalid = form.querySelector("[aria-invalid='true']");
      if (invalid && invalid.focus) invalid.focus();
      return;
    }
    const done = (editing ? "Saved " : "Created ") + result.data.name + ".";
    stopEditing();
    const failed = await redraw();
    formStatus.textContent = failed ? done + " Reload to see the schedule: " + failed : done + " The schedule below follows it.";
  });

  /* --- admins: edit and delete from the table (rows are drawn again: delegated) ------- */

  function confirmDelete(row, rotation) {
    const cell = row.querySelector(".row-actions");
    if (cell.querySelector(".confirm-delete")) return;
    const ask = element("span", null, "confirm-delete");
    ask.setAttribute("role", "group");
    ask.setAttribute("aria-label", "Confirm deleting " + rotation.name);
    const question = element("span", "Delete " + rotation.name + " and its overrides?");
    const yes = element("button", "Delete rotation", "button danger");
    yes.type = "button";
    yes.dataset.action = "confirm-delete";
    const no = element("button", "Keep it", "button");
    no.type = "button";
    no.dataset.action = "cancel-delete";
    ask.append(question, " ", yes, " ", no);
    Array.from(cell.children).forEach(function (child) { child.hidden = true; });
    cell.append(ask);
    no.focus();
  }

  function closeConfirm(row) {
    const cell = row.querySelector(".row-actions");
    cell.querySelector(".confirm-delete").remove();
    Array.from(cell.children).forEach(function (child) { child.hidden = false; });
    cell.querySelector("[data-action='delete-rotation']").focus();
  }

  rotationsPanel.querySelector("#rotations").addEventListener("click", async function (event) {
    const button = event.target.closest("[data-action]");
    if (!button) return;
    const row = button.closest("tr");
    const rotation = rotations.find(function (r) { return String(r.id) === row.dataset.rotationId; });
    if (!rotation) return;
    const action = button.dataset.action;
    if (action === "edit-rotation") startEditing(rotation);
    else if (action === "delete-rotation") confirmDelete(row, rotation);
    else if (action === "cancel-delete") closeConfirm(row);
    else if (action === "confirm-delete") {
      button.disabled = true;
      listStatus.textContent = "Deleting " + rotation.name + "…";
      const result = await EM.api("DELETE", "/api/v1/oncall/rotations/" + rotation.id);
      if (!result.ok && result.status !== 404) {
        button.disabled = false;
        listStatus.textContent = "Could not delete " + rotation.name + ": " + problem(result);
        return;
      }
      if (editing && editing.id === rotation.id) stopEditing();
      const failed = await redraw();
      listStatus.textContent = failed
        ? "Deleted " + rotation.name + ". Reload to see the schedule: " + failed
        : "Deleted " + rotation.name + " and its overrides.";
      document.getElementById("rotations-title").setAttribute("tabindex", "-1");
      document.getElementById("rotations-title").focus();
    }
  });

  rotationsPanel.querySelector("#rotations").addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    const row = event.target.closest("tr");
    if (row && row.querySelector(".confirm-delete")) closeConfirm(row);
  });

  drawParticipants();
})();
