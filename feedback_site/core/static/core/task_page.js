// What every task page of the one queue does the same way (ratings, rankings, conversations):
// show one of its states, draw a conversation from the server's sanitised HTML, keep the lease
// alive while the page is open, and show the annotator's progress. Needs core/api.js.
(function () {
  "use strict";
  var api = window.feedbackApi;

  // A function that shows `prefix + name` and hides the other states, and records the state on
  // `root` (data-mode), which the tests and the keyboard handlers read.
  function modes(root, prefix, names) {
    return function (name) {
      root.dataset.mode = name;
      names.forEach(function (part) { document.getElementById(prefix + part).hidden = part !== name; });
    };
  }

  function turn(role, html) {
    var item = document.createElement("li");
    item.className = "an-turn an-turn-" + role;
    var label = document.createElement("div");
    label.className = "an-role";
    label.textContent = role === "user" ? "User" : "Assistant";
    var body = document.createElement("div");
    body.className = "md";
    body.innerHTML = html;  // sanitised by the server (nh3 allow-list)
    body.querySelectorAll("a").forEach(function (a) { a.target = "_blank"; a.rel = "noopener noreferrer"; });
    item.appendChild(label); item.appendChild(body);
    return item;
  }

  // Replace the items of `list` with the turns [{role, html}, ...].
  function history(list, turns) {
    list.innerHTML = "";
    turns.forEach(function (t) { list.appendChild(turn(t.role, t.html)); });
  }

  // Renew the lease every third of its length (at least every 5 s) while `leaseId()` names one;
  // returns the timer (pass it back to stop the previous one).
  function heartbeat(previous, renewUrl, leaseSeconds, leaseId) {
    clearInterval(previous);
    var every = Math.max(5, Math.floor(leaseSeconds / 3)) * 1000;
    return setInterval(function () {
      var id = leaseId();
      if (id) api.post(renewUrl(id)).catch(function () {});
    }, every);
  }

  // Fill the elements named in `fields` ({progress field: element id}) from the progress call.
  function progress(url, fields) {
    return api.get(url).then(function (data) {
      if (!data) return;
      Object.keys(fields).forEach(function (key) { document.getElementById(fields[key]).textContent = data[key]; });
    }).catch(function () {});
  }

  window.taskPage = { modes: modes, turn: turn, history: history, heartbeat: heartbeat, progress: progress };
})();
