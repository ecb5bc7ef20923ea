// Conversation page: lease (or resume) a conversation, show it (server-sanitised HTML only),
// poll while a worker generates the candidate replies, take a pick or a ranking from the
// keyboard, submit the turn, and go on until the conversation has its turns. A reload asks for
// the open lease again and rebuilds everything from the server's state.
(function () {
  "use strict";
  var root = document.getElementById("converse");
  if (!root) return;
  var project = root.dataset.project;
  var $ = function (id) { return document.getElementById(id); };
  var call = window.feedbackApi.post;  // core/api.js
  var get = window.feedbackApi.get;
  var page = window.taskPage;  // core/task_page.js
  var mode = page.modes(root, "cv-", ["loading", "error", "paused", "empty", "done", "work"]);
  var state = null, order = [], tieNext = false, shownAt = 0, heartbeat = null, poller = null, busy = false;

  function fail(error) {
    busy = false;
    if (error.code === "paused") { $("cv-paused-text").textContent = error.message; mode("paused"); return; }
    $("cv-error-text").textContent = error.message || "The server could not be reached.";
    mode("error");
  }
  function replies() { return state && state.branch_point ? state.branch_point.replies : []; }
  function ranked() { var n = 0; order.forEach(function (tier) { n += tier.length; }); return n; }
  function tiers() {
    // A full ranking as typed, or a pick: the picked reply first, every other one tied second.
    if (!order.length) return null;
    if (ranked() === replies().length) return order;
    if (order.length === 1 && order[0].length === 1) {
      return [order[0], replies().filter(function (r) { return r.id !== order[0][0]; }).map(function (r) { return r.id; })];
    }
    return null;
  }
  function paintOrder() {
    var items = $("cv-replies").children;
    var place = {};
    order.forEach(function (tier, index) { tier.forEach(function (id) { place[id] = index + 1; }); });
    replies().forEach(function (reply, index) {
      var item = items[index];
      if (!item) return;
      item.dataset.rank = place[reply.id] ? String(place[reply.id]) : "";
      item.querySelector(".cv-rank").textContent = place[reply.id] ? "#" + place[reply.id] : "";
      item.setAttribute("aria-pressed", String(place[reply.id] === 1));
    });
    var full = tiers();
    $("cv-order").textContent = !order.length ? "Pick a reply: 1–" + replies().length
      : full ? "Ranking: " + full.map(function (tier) { return tier.map(function (id) { return indexOf(id) + 1; }).join(" = "); }).join(" > ")
      : "Ranking so far: " + order.map(function (tier) { return tier.map(function (id) { return indexOf(id) + 1; }).join(" = "); }).join(" > ") + " (rank every reply)";
    root.dataset.order = full ? JSON.stringify(full) : "";
    $("cv-submit").disabled = !full || !ready() || (needsUserTurn() && !$("cv-user").value.trim());
    if (state && state.allow_edits && full) {
      var chosen = replies()[indexOf(full[0][0])];
      if ($("cv-edit").dataset.for !== String(chosen.id)) { $("cv-edit").value = chosen.content; $("cv-edit").dataset.for = String(chosen.id); }
    }
  }
  function indexOf(id) { var list = replies(); for (var i = 0; i < list.length; i++) if (list[i].id === id) return i; return -1; }
  function ready() { return state && state.branch_point && state.branch_point.status === "ready"; }
  function lastTurn() { return state && state.branch_point && state.branch_point.turn_index === state.turns - 1; }
  function needsUserTurn() { return state && !lastTurn() && !state.scripted_next_user_turn; }
  function pick(index) {
    var list = replies();
    if (index >= list.length) return;
    order = [[list[index].id]];
    tieNext = false;
    paintOrder();
  }
  function rankNext(index) {
    var list = replies();
    if (index >= list.length) return;
    var id = list[index].id;
    if (order.some(function (tier) { return tier.indexOf(id) >= 0; })) return;
    if (tieNext && order.length) order[order.length - 1].push(id);
    else order.push([id]);
    tieNext = false;
    paintOrder();
  }
  function show(data) {
    clearTimeout(poller);
    busy = false;
    state = data;
    if (!data) { clearInterval(heartbeat); mode("empty"); return progress(); }
    root.dataset.assignment = String(data.assignment_id);
    if (data.done) { clearInterval(heartbeat); mode("done"); $("cv-next").focus(); return progress(); }
    var point = data.branch_point;
    var pointChanged = root.dataset.branchPoint !== String(point ? point.id : "");
    root.dataset.branchPoint = point ? String(point.id) : "";
    root.dataset.status = point ? point.status : "";
    $("cv-turn").textContent = "· turn " + (data.judged_turns + 1) + " of " + data.turns;
    $("cv-system").hidden = !data.system_prompt;
    $("cv-system-text").textContent = data.system_prompt || "";
    var history = $("cv-history");
    page.history(history, data.history);
    history.parentNode.scrollTop = history.parentNode.scrollHeight;  // the latest turn in view
    $("cv-generating").hidden = !point || (point.status !== "pending" && point.status !== "generating");
    $("cv-generating-detail").textContent = point && point.attempts > 1 ? "(attempt " + point.attempts + ")" : "";
    $("cv-failed").hidden = !point || point.status !== "failed";
    $("cv-failed-text").textContent = point ? point.error : "";
    var list = $("cv-replies");
    if (pointChanged || list.children.length !== replies().length) {
      list.innerHTML = "";
      order = []; tieNext = false;
      $("cv-edit").value = ""; $("cv-edit").dataset.for = ""; $("cv-user").value = "";
      replies().forEach(function (reply, index) {
        var item = document.createElement("li");
        item.className = "card cv-reply";
        item.dataset.replyId = String(reply.id);
        var head = document.createElement("div");
        head.className = "an-role";
        head.innerHTML = "<kbd></kbd> Reply <span class=\"cv-rank\"></span>";
        head.querySelector("kbd").textContent = String(index + 1);
        var body = document.createElement("div");
        body.className = "md";
        body.innerHTML = reply.html;  // sanitised by the server
        item.appendChild(head); item.appendChild(body);
        item.addEventListener("click", function () { pick(index); });
        list.appendChild(item);
      });
      shownAt = Date.now();
    }
    $("cv-edit-box").hidden = !(data.allow_edits && ready());
    $("cv-user-box").hidden = !(data.allow_user_turns && ready() && !lastTurn());
    $("cv-user-hint").textContent = data.scripted_next_user_turn ? "(optional: leave empty for the scripted one)" : "(required)";
    $("cv-scripted").textContent = !lastTurn() && data.scripted_next_user_turn ? "Then the user says: “" + data.scripted_next_user_turn + "”" : lastTurn() ? "Last turn" : "";
    $("cv-status").textContent = "";
    paintOrder();
    if (root.dataset.mode !== "work") { mode("work"); $("cv-convo-title").focus(); }
    if (point && (point.status === "pending" || point.status === "generating")) {
      poller = setTimeout(function () { get("/conversation-assignments/" + data.assignment_id + "/").then(show).catch(fail); }, 700);
    }
    if (!heartbeat) {
      heartbeat = page.heartbeat(heartbeat, function (id) { return "/conversation-assignments/" + id + "/renew"; }, data.lease_seconds,
        function () { return state && !state.done && state.assignment_id; });
    }
    return progress();
  }
  function progress() {
    return page.progress("/projects/" + project + "/conversations/progress", { finished: "cv-finished", turns_judged: "cv-turns", remaining_in_project: "cv-remaining" });
  }
  function next() {
    mode("loading");
    root.dataset.branchPoint = "";
    return call("/projects/" + project + "/conversations/next").then(show).catch(fail);
  }
  function submit() {
    var full = tiers();
    if (!state || !full || busy || !ready() || $("cv-submit").disabled) return;
    busy = true;
    $("cv-status").textContent = "Saving…";
    var body = { branch_point_id: state.branch_point.id, order: full, time_spent_ms: Math.min(Date.now() - shownAt, 86400000) };
    var chosen = replies()[indexOf(full[0][0])];
    if (state.allow_edits && $("cv-edit").value.trim() && $("cv-edit").value !== chosen.content) body.edited_text = $("cv-edit").value;
    if (state.allow_user_turns && !lastTurn() && $("cv-user").value.trim()) body.next_user_turn = $("cv-user").value;
    call("/conversation-assignments/" + state.assignment_id + "/turn", body).then(show).catch(fail);
  }
  function skip() {
    if (!state || busy) return;
    busy = true;
    call("/conversation-assignments/" + state.assignment_id + "/skip").then(next).catch(fail);
  }
  function retry() {
    if (root.dataset.mode === "error") { next(); return; }
    if (!state || !state.branch_point || state.branch_point.status !== "failed") return;
    call("/conversation-assignments/" + state.assignment_id + "/retry", { branch_point_id: state.branch_point.id }).then(show).catch(fail);
  }
  $("cv-submit").addEventListener("click", submit);
  $("cv-skip").addEventListener("click", skip);
  $("cv-retry").addEventListener("click", retry);
  $("cv-next").addEventListener("click", next);
  ["cv-edit", "cv-user"].forEach(function (id) {
    $(id).addEventListener("input", paintOrder);
    $(id).addEventListener("keydown", function (event) {
      if (event.key === "Escape") { event.preventDefault(); $(id).blur(); }
      else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submit(); }
      event.stopPropagation();
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea") return;
    var key = event.key.toLowerCase();
    var digit = /^Digit([1-9])$/.exec(event.code || "");
    var current = root.dataset.mode;
    if (key === "?") { $("cv-help").hidden = !$("cv-help").hidden; return; }
    if (key === "t") { retry(); return; }
    if (current === "done" && key === "n") { next(); return; }
    if (current !== "work") return;
    if (digit && event.shiftKey) { event.preventDefault(); rankNext(Number(digit[1]) - 1); }
    else if (digit) pick(Number(digit[1]) - 1);
    else if (key === "=") tieNext = true;
    else if (key === "backspace") { order = []; tieNext = false; paintOrder(); }
    else if (key === "e" && !$("cv-edit-box").hidden) { event.preventDefault(); $("cv-edit").focus(); }
    else if (key === "u" && !$("cv-user-box").hidden) { event.preventDefault(); $("cv-user").focus(); }
    else if (key === "s") skip();
    else if (key === "enter" && !(tag === "button" && event.target.id !== "cv-submit")) { event.preventDefault(); submit(); }
  });
  next();
})();
