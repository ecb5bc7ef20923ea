// Demonstration page: lease the next task, show the conversation (text only, never HTML), let
// the annotator write or correct the answer, submit or skip, then load the next one.
(function () {
  "use strict";
  var root = document.getElementById("demonstrate");
  if (!root) return;
  var project = root.dataset.project;
  var $ = function (id) { return document.getElementById(id); };
  var current = null;
  var call = window.feedbackApi.post;  // core/api.js

  function error(message) { $("dm-error").textContent = message || ""; $("dm-error").hidden = !message; }
  function turn(role, text) {
    var box = document.createElement("div");
    box.className = "dm-turn dm-" + role;
    var who = document.createElement("strong");
    who.textContent = role === "user" ? "User: " : role === "system" ? "System: " : "Assistant: ";
    var body = document.createElement("span");
    body.style.whiteSpace = "pre-wrap";
    body.textContent = text;
    box.appendChild(who); box.appendChild(body);
    return box;
  }
  function show(task) {
    current = task;
    var convo = $("dm-conversation");
    convo.innerHTML = "";
    if (!task) { $("dm-work").hidden = true; $("dm-done").hidden = false; root.dataset.mode = "done"; return; }
    var p = task.prompt;
    if (p.system_prompt) convo.appendChild(turn("system", p.system_prompt));
    (p.history || []).forEach(function (m) { convo.appendChild(turn(m.role, m.content)); });
    convo.appendChild(turn("user", p.text));
    var correcting = task.mode === "correct" && task.response;
    $("dm-instructions").textContent = correcting
      ? "Correct the response below so it becomes the ideal answer."
      : "Write the ideal response to the last user message.";
    $("dm-label").textContent = correcting ? "Response to correct" : "Your response";
    $("dm-text").value = correcting ? task.response.text : "";
    $("dm-status").textContent = "";
    $("dm-work").hidden = false; $("dm-done").hidden = true;
    root.dataset.mode = "work";
    root.dataset.assignment = String(task.assignment_id);
    $("dm-text").focus();
  }
  function next() { error(""); return call("/projects/" + project + "/demonstrations/next").then(show).catch(function (e) { error(e.message); }); }
  $("dm-submit").addEventListener("click", function () {
    if (!current) return;
    call("/demonstration-assignments/" + current.assignment_id + "/submit", { text: $("dm-text").value })
      .then(function () { $("dm-status").textContent = "Saved."; return next(); })
      .catch(function (e) { error(e.message); });
  });
  $("dm-skip").addEventListener("click", function () {
    if (!current) return;
    call("/demonstration-assignments/" + current.assignment_id + "/skip").then(next).catch(function (e) { error(e.message); });
  });
  next();
})();
