// Rating page: lease the next answer, show the conversation and the answer (server-sanitised
// HTML only), take thumbs up / down and an optional reason from the keyboard, submit or skip,
// keep the lease alive while the page is open, then load the next one.
(function () {
  "use strict";
  var root = document.getElementById("rate");
  if (!root) return;
  var project = root.dataset.project;
  var $ = function (id) { return document.getElementById(id); };
  var current = null, label = null, shownAt = 0, heartbeat = null, busy = false;
  var call = window.feedbackApi.post;  // core/api.js
  var page = window.taskPage;  // core/task_page.js
  var mode = page.modes(root, "rt-", ["loading", "error", "paused", "empty", "work"]);
  function fail(error) {
    if (error.code === "paused") { $("rt-paused-text").textContent = error.message; mode("paused"); return; }
    $("rt-error-text").textContent = error.message || "The server could not be reached.";
    mode("error");
  }
  function choose(value) {
    label = value;
    $("rt-up").setAttribute("aria-pressed", String(value === true));
    $("rt-down").setAttribute("aria-pressed", String(value === false));
    $("rt-submit").disabled = value === null;
    root.dataset.choice = value === null ? "" : value ? "up" : "down";
  }
  function show(task) {
    busy = false;  // the next answer is on screen: keys act on it at once
    current = task;
    if (!task) { clearInterval(heartbeat); mode("empty"); return; }
    var p = task.prompt;
    $("rt-system").hidden = !p.system_prompt;
    $("rt-system-text").textContent = p.system_prompt || "";
    page.history($("rt-history"), p.history);
    $("rt-prompt").innerHTML = p.html;  // sanitised by the server
    $("rt-answer").innerHTML = task.answer_html;  // sanitised by the server
    $("rt-answer").querySelectorAll("a").forEach(function (a) { a.target = "_blank"; a.rel = "noopener noreferrer"; });
    $("rt-warning").hidden = !task.safety_flag;
    $("rt-warning").textContent = task.safety_flag || "";
    $("rt-reason").value = "";
    $("rt-status").textContent = "";
    choose(null);
    root.dataset.assignment = String(task.assignment_id);
    shownAt = Date.now();
    mode("work");
    $("rt-convo-title").focus();
    heartbeat = page.heartbeat(heartbeat, function (id) { return "/rating-assignments/" + id + "/renew"; }, task.lease_seconds,
      function () { return current && current.assignment_id; });
  }
  function progress() {
    return page.progress("/projects/" + project + "/ratings/progress", { rated: "rt-rated", skipped: "rt-skipped", remaining_in_project: "rt-remaining" });
  }
  function next() {
    mode("loading");
    return call("/projects/" + project + "/ratings/next").then(show).catch(fail).then(progress);
  }
  function submit() {
    if (!current || label === null || busy) return;
    busy = true;
    var body = { label: label, reason: $("rt-reason").value, time_spent_ms: Math.min(Date.now() - shownAt, 86400000) };
    call("/rating-assignments/" + current.assignment_id + "/submit", body)
      .then(next)
      .catch(function (e) { busy = false; fail(e); });
  }
  function skip() {
    if (!current || busy) return;
    busy = true;
    call("/rating-assignments/" + current.assignment_id + "/skip")
      .then(next)
      .catch(function (e) { busy = false; fail(e); });
  }
  $("rt-up").addEventListener("click", function () { choose(true); });
  $("rt-down").addEventListener("click", function () { choose(false); });
  $("rt-submit").addEventListener("click", submit);
  $("rt-skip").addEventListener("click", skip);
  $("rt-reason").addEventListener("keydown", function (event) {
    if (event.key === "Escape") { event.preventDefault(); $("rt-reason").blur(); }
    else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submit(); }
    event.stopPropagation();
  });
  document.addEventListener("keydown", function (event) {
    if (root.dataset.mode !== "work" || event.altKey || event.ctrlKey || event.metaKey) return;
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea") return;
    var key = event.key.toLowerCase();
    if (key === "1") choose(true);
    else if (key === "2") choose(false);
    else if (key === "r") { event.preventDefault(); $("rt-reason").focus(); }
    else if (key === "s") skip();
    else if (key === "enter" && !(tag === "button" && event.target.id !== "rt-submit")) { event.preventDefault(); submit(); }
    else return;
  });
  next();
})();
