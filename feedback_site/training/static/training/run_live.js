// Live view of a training run without reloading the page. Every two seconds it reads the run
// (`api-training-run`: status, step, ETA, latest metrics, log tail) and the metric points logged
// since the last one it has (`api-training-run-metrics?after=STEP`), and redraws the charts (the
// site's chart module, core/static/core/charts.js, which draws with Chart.js). It
// stops once the run reaches a terminal status (after a last read of the points). Values are
// written with textContent only, so nothing from the server (log lines, messages, metric names)
// is ever interpreted as HTML.
(function () {
  "use strict";
  var root = document.getElementById("run-live");
  var specNode = document.getElementById("chart-spec");
  if (!root || !specNode || !window.SiteCharts) return;
  var spec = JSON.parse(specNode.textContent);
  var fmt = window.SiteCharts.fmt;
  var terminal = (root.dataset.terminal || "").split(" ");
  var INTERVAL_MS = 2000;
  var PAGE = 5000;  // the metrics endpoint returns at most this many points per call
  var failures = 0;
  var lastStep = null;
  var series = {};  // key -> [[step, value], ...]
  var charts = {};  // chart title -> {chart, order}
  var chartOf = {}; // key -> chart title
  var chartsBox = root.querySelector("[data-charts]");
  var labelOrder = Object.keys(spec.labels);
  var uncharted = spec.uncharted || [];

  function fields(name) { return root.querySelectorAll('[data-field="' + name + '"]'); }
  function set(name, value) { fields(name).forEach(function (node) { node.textContent = value; }); }
  function label(key) { return Object.prototype.hasOwnProperty.call(spec.labels, key) ? spec.labels[key] : key; }
  function statusLabel(status) { return status ? status.charAt(0).toUpperCase() + status.slice(1) : ""; }
  function stamp(iso) {
    if (!iso) return "—";
    var d = new Date(iso);
    function pad(n) { return (n < 10 ? "0" : "") + n; }
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }
  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds) || seconds < 0) return "—";
    seconds = Math.round(seconds);
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    seconds = seconds % 60;
    if (minutes < 60) return minutes + " min " + (seconds < 10 ? "0" : "") + seconds + " s";
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    return hours + " h " + (minutes < 10 ? "0" : "") + minutes + " min";
  }

  // ---- charts -------------------------------------------------------------------------------

  function placement(key) {
    for (var i = 0; i < spec.groups.length; i++) {
      var group = spec.groups[i];
      if (group.keys.indexOf(key) !== -1) return { title: group.title, order: i };
      var prefixes = group.prefixes || [];
      for (var j = 0; j < prefixes.length; j++) if (key.indexOf(prefixes[j]) === 0) return { title: group.title, order: i };
    }
    var slash = key.indexOf("/");
    var title = slash > 0 ? key.slice(0, slash) : label(key);
    return { title: title, order: spec.groups.length + Object.keys(charts).length };
  }

  function chartFor(key) {
    if (chartOf[key]) return charts[chartOf[key]].chart;
    var place = placement(key);
    if (!charts[place.title]) {
      var empty = root.querySelector('[data-field="charts-empty"]');
      if (empty) empty.remove();
      var holder = document.createElement("div");
      holder.className = "chart-slot";
      holder.dataset.order = place.order;
      var after = null;
      Array.prototype.forEach.call(chartsBox.children, function (child) {
        if (after === null && Number(child.dataset.order) > place.order) after = child;
      });
      chartsBox.insertBefore(holder, after);
      charts[place.title] = { chart: new window.SiteCharts.LineChart(holder, place.title, { xLabel: "step" }), order: place.order, dirty: true };
    }
    chartOf[key] = place.title;
    return charts[place.title].chart;
  }

  function addPoints(points) {
    var touched = {};
    points.forEach(function (point) {
      var values = point.values || {};
      Object.keys(values).forEach(function (key) {
        var value = values[key];
        if (typeof value !== "number" || !isFinite(value) || uncharted.indexOf(key) !== -1) return;
        if (!series[key]) series[key] = [];
        series[key].push([point.step, value]);
        touched[key] = true;
      });
      if (lastStep === null || point.step > lastStep) lastStep = point.step;
    });
    var sorted = Object.keys(touched).sort(function (a, b) {
      var ia = labelOrder.indexOf(a), ib = labelOrder.indexOf(b);
      return (ia === -1 ? 1e6 : ia) - (ib === -1 ? 1e6 : ib) || (a < b ? -1 : a > b ? 1 : 0);
    });
    sorted.forEach(function (key) {
      chartFor(key).setSeries(key, label(key), series[key]);
      charts[chartOf[key]].dirty = true;
    });
    Object.keys(charts).forEach(function (title) {
      if (charts[title].dirty) { charts[title].chart.render(); charts[title].dirty = false; }
    });
    var total = 0;
    Object.keys(series).forEach(function (key) { total = Math.max(total, series[key].length); });
    set("points-note", total ? total + " logged step" + (total === 1 ? "" : "s") : "");
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      });
  }

  function fetchMetrics() {
    var url = root.dataset.metricsUrl + (lastStep === null ? "" : "?after=" + encodeURIComponent(lastStep));
    return getJSON(url).then(function (points) {
      addPoints(points);
      if (points.length >= PAGE) return fetchMetrics();  // more than one page behind: keep reading
      return null;
    });
  }

  // ---- the run's fields ---------------------------------------------------------------------

  function renderMetricsTable(metrics) {
    var body = root.querySelector('[data-field="metrics"]');
    if (!body) return;
    var keys = Object.keys(metrics || {}).filter(function (key) { return key !== "step"; });
    keys.sort(function (a, b) {
      var ia = labelOrder.indexOf(a), ib = labelOrder.indexOf(b);
      return (ia === -1 ? 1e6 : ia) - (ib === -1 ? 1e6 : ib) || (a < b ? -1 : a > b ? 1 : 0);
    });
    while (body.firstChild) body.removeChild(body.firstChild);
    if (!keys.length) {
      var emptyRow = document.createElement("tr");
      var cell = document.createElement("td");
      cell.className = "empty";
      cell.colSpan = 2;
      cell.textContent = "No metrics reported yet.";
      emptyRow.appendChild(cell);
      body.appendChild(emptyRow);
      return;
    }
    keys.forEach(function (key) {
      var row = document.createElement("tr");
      var th = document.createElement("th");
      th.scope = "row";
      th.textContent = label(key);
      if (label(key) !== key) {
        th.appendChild(document.createTextNode(" "));
        var code = document.createElement("code");
        code.className = "key";
        code.textContent = key;
        th.appendChild(code);
      }
      var td = document.createElement("td");
      td.className = "num";
      td.textContent = fmt(metrics[key]);
      row.appendChild(th);
      row.appendChild(td);
      body.appendChild(row);
    });
  }

  function render(run) {
    var done = terminal.indexOf(run.status) !== -1;
    var percent = run.total_steps ? Math.min(100, Math.round(100 * run.step / run.total_steps)) : 0;
    fields("status").forEach(function (node) {
      node.textContent = statusLabel(run.status);
      node.className = "status status-" + run.status;
    });
    fields("bar").forEach(function (node) {
      node.style.width = percent + "%";
      node.className = run.status === "succeeded" ? "done" : run.status === "failed" ? "failed" : "";
      if (node.parentNode) node.parentNode.setAttribute("aria-valuenow", String(percent));
    });
    set("percent", percent);
    set("step", run.step);
    set("metrics-step", run.step);
    set("total_steps", run.total_steps || "?");
    var metrics = run.latest_metrics || {};
    // The worker's estimate needs two reports; until then the trainer's own eta_s (a metric) stands in.
    set("eta", done ? "—" : duration(run.eta_seconds != null ? run.eta_seconds : metrics.eta_s));
    set("loss", fmt(metrics.loss));
    set("learning_rate", fmt(metrics.learning_rate));
    set("tokens_per_s", fmt(metrics.tokens_per_s));
    set("attempts", run.attempts);
    set("attempts-note", run.attempts > 1 ? "attempts (resumed " + (run.attempts - 1) + "× after a lost worker)" : "attempt");
    set("started_at", stamp(run.started_at));
    set("finished_at", stamp(run.finished_at));
    renderMetricsTable(metrics);
    fields("message").forEach(function (node) {
      node.textContent = run.message || "";
      node.className = "run-message" + (run.status === "failed" ? " error" : "");
    });
    fields("log_tail").forEach(function (node) {
      var atBottom = node.scrollHeight - node.scrollTop - node.clientHeight < 24;
      node.textContent = run.log_tail || "(no output yet)";
      if (atBottom) node.scrollTop = node.scrollHeight;
    });
    if (run.output_version_id) {
      fields("output").forEach(function (node) { node.hidden = false; });
      fields("output-link").forEach(function (link) {
        var wanted = root.dataset.modelsUrl + "#version-" + run.output_version_id;
        if (link.getAttribute("href") !== wanted) {
          link.setAttribute("href", wanted);
          var text = (run.message || "").replace(/^Registered\s+/, "").replace(/\.$/, "");
          link.textContent = text || "the new version";
        }
      });
    }
    var cancel = document.getElementById("cancel-form");
    if (cancel) {
      var button = cancel.querySelector("button");
      if (done) cancel.hidden = true;
      else if (run.cancel_requested && button) { button.disabled = true; button.textContent = "Cancelling…"; }
    }
  }

  function note(text, problem) {
    fields("live-note").forEach(function (node) {
      node.textContent = text;
      node.className = "live-note" + (problem ? " problem" : "");
    });
  }

  function poll() {
    var run = null;
    getJSON(root.dataset.apiUrl)
      .then(function (data) { run = data; render(run); return fetchMetrics(); })
      .then(function () {
        failures = 0;
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

  if (terminal.indexOf(root.dataset.status) === -1) {
    poll();
  } else {
    // A finished run: draw its charts once.
    fetchMetrics().catch(function (error) { note("could not load the metrics (" + error.message + ")", true); });
  }
})();
