// Ranking page: lease the next answer set, show the conversation and its answers in the lease's
// order (server-sanitised HTML only), and take a ranking keyboard-first: arrows pick an answer,
// a number key gives it that rank (equal numbers tie), Shift+arrows move it a rank, drag and
// drop as well. The ranking in progress is kept in localStorage per assignment, so a reload or
// a failed submit loses nothing; the lease is renewed while the page is open.
(function () {
  "use strict";
  var root = document.getElementById("rank");
  if (!root) return;
  var project = root.dataset.project;
  var $ = function (id) { return document.getElementById(id); };
  var call = window.feedbackApi.post;  // core/api.js
  var page = window.taskPage;  // core/task_page.js
  var mode = page.modes(root, "rk-", ["loading", "error", "paused", "empty", "work"]);
  var STRENGTH_KEYS = { q: "slight", w: "clear", e: "much" };
  var current = null, ranks = {}, active = 0, unacceptable = false, strength = "", shownAt = 0, heartbeat = null, busy = false;
  var dragged = null;

  function draftKey() { return "rank:draft:" + project + ":" + current.assignment_id; }
  function saveDraft() {
    if (!current) return;
    try {
      localStorage.setItem(draftKey(), JSON.stringify({ ranks: ranks, unacceptable: unacceptable, strength: strength, rationale: $("rk-rationale").value }));
    } catch (err) { /* storage full or disabled: the ranking still works, only without a draft */ }
  }
  function loadDraft() {
    try { return JSON.parse(localStorage.getItem(draftKey()) || "null"); } catch (err) { return null; }
  }

  function fail(error) {
    if (error.code === "paused") { $("rk-paused-text").textContent = error.message; mode("paused"); return; }
    $("rk-error-text").textContent = error.message || "The server could not be reached.";
    mode("error");
  }
  function answers() { return current ? current.answers : []; }
  function complete() { return answers().every(function (a) { return ranks[a.response_id]; }); }
  function letter(id) {
    var found = answers().filter(function (a) { return a.response_id === id; })[0];
    return found ? found.label : "?";
  }
  function orderText() {
    if (unacceptable) return "All answers unacceptable";
    var byRank = {};
    answers().forEach(function (a) {
      var r = ranks[a.response_id];
      if (r) (byRank[r] = byRank[r] || []).push(a.label);
    });
    var tiers = Object.keys(byRank).map(Number).sort(function (x, y) { return x - y; }).map(function (r) { return byRank[r].join(" = "); });
    var missing = answers().filter(function (a) { return !ranks[a.response_id]; }).length;
    return (tiers.length ? "Your order: " + tiers.join(" > ") : "No answer ranked yet") + (missing ? " · " + missing + " still to rank" : "");
  }
  function render() {
    var k = answers().length;
    answers().forEach(function (a, index) {
      var card = document.querySelector('.rk-answer[data-response="' + a.response_id + '"]');
      var r = ranks[a.response_id] || 0;
      card.dataset.active = String(index === active);
      card.dataset.ranked = String(Boolean(r));
      card.dataset.rank = String(r);
      card.querySelector("select").value = String(r);
      card.querySelector(".rk-rank-text").textContent = r ? "Rank " + r : "Not ranked";
      card.setAttribute("aria-label", "Answer " + a.label + ", " + (r ? "rank " + r + " of " + k : "not ranked"));
    });
    $("rk-order").textContent = orderText();
    $("rk-unacceptable").setAttribute("aria-pressed", String(unacceptable));
    document.querySelectorAll("[data-strength]").forEach(function (b) { b.setAttribute("aria-pressed", String(b.dataset.strength === strength)); });
    $("rk-submit").disabled = !(unacceptable || complete());
    root.dataset.complete = String(unacceptable || complete());
  }
  function changed() { saveDraft(); render(); }
  function setRank(index, rank) {
    var a = answers()[index];
    if (!a) return;
    if (rank) ranks[a.response_id] = Math.max(1, Math.min(answers().length, rank));
    else delete ranks[a.response_id];
    changed();
  }
  function pick(index) {
    var n = answers().length;
    active = (index + n) % n;
    render();
    var card = document.querySelector('.rk-answer[data-active="true"]');
    if (card) card.scrollIntoView({ block: "nearest" });
  }
  function nextUnranked() {
    var n = answers().length;
    for (var step = 1; step <= n; step++) {
      var index = (active + step) % n;
      if (!ranks[answers()[index].response_id]) return index;
    }
    return active;
  }
  // Drop `id` where `target` is: it takes the target's rank and everything from there moves down.
  function dropOnto(id, target) {
    if (id === target) return;
    var place = ranks[target];
    if (!place) {
      var top = 0;
      Object.keys(ranks).forEach(function (key) { if (Number(key) !== id) top = Math.max(top, ranks[key]); });
      ranks[id] = Math.min(top + 1, answers().length);
    } else {
      Object.keys(ranks).forEach(function (key) { if (Number(key) !== id && ranks[key] >= place) ranks[key] += 1; });
      ranks[id] = place;
      // Renumber 1, 2, 3 … keeping ties, so every rank stays within 1..K.
      var used = Object.keys(ranks).map(function (key) { return ranks[key]; }).filter(function (v, i, all) { return all.indexOf(v) === i; }).sort(function (x, y) { return x - y; });
      Object.keys(ranks).forEach(function (key) { ranks[key] = used.indexOf(ranks[key]) + 1; });
    }
    changed();
  }
  function answerCard(a, index, k) {
    var item = document.createElement("li");
    item.className = "rk-answer";
    item.dataset.response = String(a.response_id);
    item.draggable = true;
    var head = document.createElement("div");
    head.className = "rk-answer-head";
    var name = document.createElement("span");
    name.className = "rk-letter";
    name.textContent = a.label;
    var text = document.createElement("span");
    text.className = "rk-rank-text muted";
    var rank = document.createElement("label");
    rank.className = "rk-rank";
    var select = document.createElement("select");
    select.setAttribute("aria-label", "Rank of answer " + a.label);
    select.tabIndex = -1;  // the keyboard path is the number keys
    var none = document.createElement("option");
    none.value = "0"; none.textContent = "–";
    select.appendChild(none);
    for (var r = 1; r <= k; r++) {
      var option = document.createElement("option");
      option.value = String(r); option.textContent = String(r);
      select.appendChild(option);
    }
    select.addEventListener("change", function () { active = index; setRank(index, Number(select.value)); });
    rank.appendChild(select);
    head.appendChild(name); head.appendChild(text); head.appendChild(rank);
    var body = document.createElement("div");
    body.className = "md rk-answer-body";
    body.innerHTML = a.html;  // sanitised by the server (nh3 allow-list)
    body.querySelectorAll("a").forEach(function (link) { link.target = "_blank"; link.rel = "noopener noreferrer"; });
    item.appendChild(head);
    if (a.safety_flag) {
      var warning = document.createElement("p");
      warning.className = "an-warning";
      warning.textContent = a.safety_flag;
      item.appendChild(warning);
    }
    item.appendChild(body);
    item.addEventListener("click", function () { pick(index); });
    item.addEventListener("dragstart", function (event) { dragged = a.response_id; event.dataTransfer.setData("text/plain", String(a.response_id)); });
    item.addEventListener("dragover", function (event) { event.preventDefault(); item.classList.add("rk-drop"); });
    item.addEventListener("dragleave", function () { item.classList.remove("rk-drop"); });
    item.addEventListener("drop", function (event) {
      event.preventDefault();
      item.classList.remove("rk-drop");
      var id = dragged || Number(event.dataTransfer.getData("text/plain"));
      dragged = null;
      if (id) dropOnto(id, a.response_id);
    });
    return item;
  }
  function show(task) {
    busy = false;
    current = task;
    if (!task) { clearInterval(heartbeat); mode("empty"); return; }
    var p = task.prompt;
    $("rk-system").hidden = !p.system_prompt;
    $("rk-system-text").textContent = p.system_prompt || "";
    page.history($("rk-history"), p.history);
    $("rk-prompt").innerHTML = p.html;  // sanitised by the server
    var list = $("rk-answers");
    list.innerHTML = "";
    task.answers.forEach(function (a, index) { list.appendChild(answerCard(a, index, task.answers.length)); });
    var draft = loadDraft() || {};
    ranks = {};
    Object.keys(draft.ranks || {}).forEach(function (key) {
      if (task.answers.some(function (a) { return String(a.response_id) === key; })) ranks[key] = draft.ranks[key];
    });
    unacceptable = Boolean(draft.unacceptable);
    strength = draft.strength || "";
    $("rk-rationale").value = draft.rationale || "";
    $("rk-status").textContent = "";
    active = 0;
    root.dataset.assignment = String(task.assignment_id);
    shownAt = Date.now();
    mode("work");
    render();
    $("rk-convo-title").focus();
    heartbeat = page.heartbeat(heartbeat, function (id) { return "/ranking-assignments/" + id + "/renew"; }, task.lease_seconds,
      function () { return current && current.assignment_id; });
  }
  function progress() {
    return page.progress("/projects/" + project + "/rankings/progress", { ranked: "rk-ranked", skipped: "rk-skipped", remaining_in_project: "rk-remaining" });
  }
  function next() {
    mode("loading");
    return call("/projects/" + project + "/rankings/next").then(show).catch(fail).then(progress);
  }
  function submit() {
    if (!current || busy) return;
    if (!(unacceptable || complete())) {
      $("rk-status").textContent = "Give every answer a rank first (or press U if none is acceptable).";
      return;
    }
    busy = true;
    $("rk-status").textContent = "Saving…";
    var body = { all_unacceptable: unacceptable, strength: strength, rationale: $("rk-rationale").value, time_spent_ms: Math.min(Date.now() - shownAt, 86400000) };
    if (!unacceptable) {
      body.ranks = answers().map(function (a) { return { response_id: a.response_id, rank: ranks[a.response_id] }; });
    }
    var key = draftKey();
    call("/ranking-assignments/" + current.assignment_id + "/submit", body)
      .then(function () { localStorage.removeItem(key); return next(); })
      .catch(function (e) { busy = false; fail(e); });
  }
  function skip() {
    if (!current || busy) return;
    busy = true;
    var key = draftKey();
    call("/ranking-assignments/" + current.assignment_id + "/skip")
      .then(function () { localStorage.removeItem(key); return next(); })
      .catch(function (e) { busy = false; fail(e); });
  }
  function toggleHelp(force) {
    var help = $("rk-help");
    help.hidden = force === undefined ? !help.hidden : !force;
  }

  $("rk-submit").addEventListener("click", submit);
  $("rk-skip").addEventListener("click", skip);
  $("rk-unacceptable").addEventListener("click", function () { unacceptable = !unacceptable; changed(); });
  document.querySelectorAll("[data-strength]").forEach(function (button) {
    button.addEventListener("click", function () { strength = strength === button.dataset.strength ? "" : button.dataset.strength; changed(); });
  });
  $("rk-rationale").addEventListener("input", saveDraft);
  $("rk-rationale").addEventListener("keydown", function (event) {
    if (event.key === "Escape") { event.preventDefault(); $("rk-rationale").blur(); }
    else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submit(); }
    event.stopPropagation();
  });
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select") return;
    var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (key === "?") { event.preventDefault(); toggleHelp(); return; }
    if (key === "Escape") { toggleHelp(false); return; }
    if (root.dataset.mode === "error" && key === "Enter") { event.preventDefault(); next(); return; }
    if (root.dataset.mode !== "work") return;
    var k = answers().length;
    if (key === "ArrowDown" || key === "ArrowRight" || key === "j") {
      event.preventDefault();
      if (event.shiftKey && key === "ArrowDown") { setRank(active, (ranks[answers()[active].response_id] || 0) + 1); return; }
      pick(active + 1);
    } else if (key === "ArrowUp" || key === "ArrowLeft" || key === "k") {
      event.preventDefault();
      if (event.shiftKey && key === "ArrowUp") { setRank(active, Math.max(1, (ranks[answers()[active].response_id] || 2) - 1)); return; }
      pick(active - 1);
    } else if (/^[1-9]$/.test(key) && Number(key) <= k) {
      event.preventDefault();
      setRank(active, Number(key));
      pick(nextUnranked());
    } else if (key === "0" || key === "Backspace") {
      event.preventDefault();
      setRank(active, 0);
    } else if (key === "u") {
      unacceptable = !unacceptable; changed();
    } else if (STRENGTH_KEYS.hasOwnProperty(key)) {
      strength = strength === STRENGTH_KEYS[key] ? "" : STRENGTH_KEYS[key]; changed();
    } else if (key === "r") {
      event.preventDefault(); $("rk-rationale").focus();
    } else if (key === "s") {
      skip();
    } else if (key === "Enter" && !(tag === "button" && event.target.id !== "rk-submit")) {
      event.preventDefault(); submit();
    }
  });
  next();
})();
