// Live progress of a generation run without reloading the page: polls the REST API every two
// seconds until the run reaches a terminal status. Values are written with textContent only, so
// nothing from the server (log lines, messages) is ever interpreted as HTML.
(function () {
  "use strict";
  var root = document.getElementById("run-live");
  if (!root) return;
  var url = root.dataset.apiUrl;
  var terminal = (root.dataset.terminal || "").split(" ");
  var INTERVAL_MS = 2000;
  var failures = 0;

  function fields(name) { return root.querySelectorAll('[data-field="' + name + '"]'); }
  function set(name, value) { fields(name).forEach(function (el) { el.textContent = value; }); }
  function label(status) { return status ? status.charAt(0).toUpperCase() + status.slice(1) : ""; }
  function stamp(iso) {
    if (!iso) return "—";
    var d = new Date(iso);
    function pad(n) { return (n < 10 ? "0" : "") + n; }
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }

  function render(run) {
    var percent = run.progress_total ? Math.round(100 * run.progress_done / run.progress_total) : 0;
    fields("status").forEach(function (el) {
      el.textContent = label(run.status);
      el.className = "status status-" + run.status;
    });
    fields("bar").forEach(function (el) {
      el.style.width = percent + "%";
      el.className = run.status === "succeeded" ? "done" : run.status === "failed" ? "failed" : "";
      if (el.parentNode) el.parentNode.setAttribute("aria-valuenow", String(percent));
    });
    set("percent", percent);
    set("progress_done", run.progress_done);
    set("progress_total", run.progress_total);
    set("tokens_per_second", run.tokens_per_second == null ? "—" : run.tokens_per_second.toFixed(1));
    set("response_count", run.response_count);
    set("pair_count", run.pair_count);
    set("started_at", stamp(run.started_at));
    set("finished_at", stamp(run.finished_at));
    fields("message").forEach(function (el) {
      el.textContent = run.message || "";
      el.className = run.status === "failed" ? "error" : "";
    });
    fields("log_tail").forEach(function (el) {
      var atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
      el.textContent = run.log_tail || "(no output yet)";
      if (atBottom) el.scrollTop = el.scrollHeight;
    });
    var cancel = document.getElementById("cancel-form");
    if (cancel) {
      var button = cancel.querySelector("button");
      if (terminal.indexOf(run.status) !== -1) cancel.hidden = true;
      else if (run.cancel_requested && button) { button.disabled = true; button.textContent = "Cancelling…"; }
    }
  }

  function note(text, problem) {
    fields("live-note").forEach(function (el) {
      el.textContent = text;
      el.className = "live-note" + (problem ? " problem" : "");
    });
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (run) {
        failures = 0;
        render(run);
        if (terminal.indexOf(run.status) === -1) {
          note("updating every 2 s", false);
          window.setTimeout(poll, INTERVAL_MS);
        } else {
          note("finished", false);
        }
      })
      .catch(function (error) {
        failures += 1;
        note("cannot reach the server (" + error.message + "); retrying", true);
        // Back off while the server is unreachable, but keep trying: the run goes on without us.
        window.setTimeout(poll, Math.min(INTERVAL_MS * Math.pow(2, failures), 30000));
      });
  }

  if (terminal.indexOf(root.dataset.status) === -1) window.setTimeout(poll, INTERVAL_MS);
})();
