// The site's one chart module. Every chart on every page is drawn by Chart.js (vendored in
// core/static/vendor/chart.js, loaded before this file; docs/architecture.md says why), and only
// through this file, so the pages hold data, not drawing code.
//
// Charts from data in the page. The server embeds a chart's data as JSON next to its figure
// (feedback_site/core/charts.py builds it, templates/core/_chart.html writes it):
//   <figure class="chart" data-chart="ID-data"><div class="chart-canvas"><canvas …></div></figure>
//   <script id="ID-data" type="application/json">{"kind": "bar", …}</script>
// and this file draws every such figure when it loads. Kinds:
//   "bar", "line"  categories on x (hours, weeks, labels), one or more series; null leaves a gap
//   "interval"     one row per item: a dot at its value and a bar over its interval (leaderboard)
//   "lineage"      model versions in registration order, one lane per kind, parent-child edges
//
// Live charts (the training run page, fed by training/run_live.js):
//   var chart = new SiteCharts.LineChart(parentElement, "Loss", { xLabel: "step" });
//   chart.setSeries("loss", "Loss", [[step, value], ...]);  // add a series or give it more points
//   chart.render();
// Series longer than about four points per pixel are reduced to the minimum and maximum per pixel
// column by Chart.js's decimation plugin, so spikes stay visible and a run with 100k points draws
// as fast as one with 500.
//
// Text from the server (titles, labels, names) reaches the page only as canvas text drawn by
// Chart.js or through textContent, never as HTML.
(function () {
  "use strict";
  var Chart = window.Chart;
  if (!Chart) return;
  var COLORS = ["#2456d6", "#e8590c", "#2b8a3e", "#862e9c", "#0c8599", "#c92a2a", "#5c940d", "#495057"];
  var CURRENT = "#1f7a3d";

  Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
  Chart.defaults.font.size = 11;
  Chart.defaults.color = "#5b6475";
  Chart.defaults.animation = false;
  Chart.defaults.responsive = true;
  Chart.defaults.maintainAspectRatio = false;

  // Four significant digits; exponent form below 1e-3 and from 1e6 (same as the server's format_number).
  function fmt(value) {
    if (value === null || value === undefined || typeof value !== "number") return value == null ? "—" : String(value);
    if (!isFinite(value)) return String(value);
    if (value === 0) return "0";
    var abs = Math.abs(value);
    if (abs < 1e-3 || abs >= 1e6) {
      var parts = value.toExponential(3).split("e");
      var mantissa = parts[0].indexOf(".") === -1 ? parts[0] : parts[0].replace(/0+$/, "").replace(/\.$/, "");
      return mantissa + "e" + parts[1];
    }
    return String(parseFloat(value.toPrecision(4)));
  }

  function html(tag, className, parent, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function color(i) { return COLORS[i % COLORS.length]; }
  function axisTitle(text) { return { display: !!text, text: text || "" }; }
  function tick(value) { return fmt(value); }
  function itemLabel(item) { return (item.dataset.label ? item.dataset.label + ": " : "") + fmt(item.parsed.y); }

  // ---- charts from the page's JSON ----------------------------------------------------------

  var KINDS = {
    bar: function (spec) {
      return {
        type: "bar",
        data: {
          labels: spec.labels,
          datasets: spec.series.map(function (s, i) { return { label: s.label, data: s.values, backgroundColor: color(i) }; }),
        },
        options: {
          plugins: { legend: { display: spec.series.length > 1 }, tooltip: { callbacks: { label: itemLabel } } },
          scales: {
            x: { title: axisTitle(spec.x_label), ticks: { maxRotation: 0, autoSkipPadding: 8 }, grid: { display: false } },
            y: { beginAtZero: true, title: axisTitle(spec.y_label), ticks: { precision: spec.integer ? 0 : undefined, callback: tick } },
          },
        },
      };
    },

    line: function (spec) {
      return {
        type: "line",
        data: {
          labels: spec.labels,
          datasets: spec.series.map(function (s, i) {
            return { label: s.label, data: s.values, borderColor: color(i), backgroundColor: color(i), borderWidth: 2, pointRadius: 3, spanGaps: false };
          }),
        },
        options: {
          interaction: { mode: "index", intersect: false },
          plugins: { legend: { display: true, position: "top", align: "start", labels: { usePointStyle: true } }, tooltip: { callbacks: { label: itemLabel } } },
          scales: {
            x: { title: axisTitle(spec.x_label), ticks: { maxRotation: 0, autoSkipPadding: 8 } },
            y: { suggestedMin: 0, max: spec.y_max === null ? undefined : spec.y_max, title: axisTitle(spec.y_label), ticks: { callback: tick } },
          },
        },
      };
    },

    interval: function (spec) {
      // As many decimals as the tick spacing needs: ratings 1000.0-1001.5 read "1000.5 1001.0",
      // not "1000 1000 1001" (whole numbers when the intervals are wide).
      function stepTick(v, index, ticks) {
        var step = ticks.length > 1 ? Math.abs(ticks[1].value - ticks[0].value) : 1;
        var decimals = 0;
        while (decimals < 4 && step > 0 && Math.abs(step * Math.pow(10, decimals) - Math.round(step * Math.pow(10, decimals))) > 1e-6) decimals++;
        return Number(v).toFixed(decimals);
      }
      var colors = spec.rows.map(function (r) { return r.highlight ? CURRENT : COLORS[0]; });
      return {
        type: "bar",
        data: {
          labels: spec.rows.map(function (r) { return r.label; }),
          datasets: [
            { label: spec.interval_label, data: spec.rows.map(function (r) { return [r.low, r.high]; }), backgroundColor: COLORS[0], barThickness: 3, order: 2 },
            {
              type: "line", label: spec.value_label, data: spec.rows.map(function (r) { return r.value; }), showLine: false,
              pointRadius: 5, pointHoverRadius: 6, pointBackgroundColor: colors, pointBorderColor: colors, order: 1,
            },
          ],
        },
        options: {
          indexAxis: "y",
          interaction: { mode: "index", axis: "y", intersect: false },
          plugins: {
            legend: { display: false },
            tooltip: {
              filter: function (item) { return item.datasetIndex === 1; },
              callbacks: {
                label: function (item) {
                  var r = spec.rows[item.dataIndex];
                  return spec.value_label + " " + r.value.toFixed(0) + " [" + r.low.toFixed(0) + ", " + r.high.toFixed(0) + "]";
                },
              },
            },
          },
          scales: {
            // The axis spans the intervals (a bar chart's value axis would start at zero).
            x: { beginAtZero: false, grace: "4%", title: axisTitle(spec.x_label), ticks: { callback: stepTick } },
            y: { grid: { display: false } },
          },
        },
      };
    },

    lineage: function (spec) {
      var nodes = spec.nodes;
      var edges = [];  // parent, child, gap, parent, child, gap, ...
      spec.edges.forEach(function (e) {
        var a = nodes[e[0]], b = nodes[e[1]];
        edges.push({ x: a.x, y: a.y }, { x: b.x, y: b.y }, { x: b.x, y: null });
      });
      var datasets = [{ label: "", data: edges, showLine: true, spanGaps: false, borderColor: "#888", borderWidth: 1.5, pointRadius: 0, pointHitRadius: 0 }];
      spec.groups.forEach(function (group) {
        datasets.push({
          label: group.label,
          data: nodes.filter(function (n) { return n.group === group.key; }).map(function (n) { return { x: n.x, y: n.y, node: n }; }),
          backgroundColor: group.color, borderColor: group.color, pointRadius: group.radius, pointHoverRadius: group.radius + 1,
        });
      });
      function only(values) { return function (axis) { axis.ticks = values.map(function (v) { return { value: v }; }); }; }
      return {
        type: "scatter",
        data: { datasets: datasets },
        options: {
          layout: { padding: { left: 8, right: 16 } },
          plugins: {
            legend: {
              display: true, position: "top", align: "start",
              labels: { usePointStyle: true, filter: function (item) { return item.datasetIndex > 0; } },
            },
            tooltip: {
              filter: function (item) { return item.datasetIndex > 0; },
              callbacks: { label: function (item) { return item.raw.node.label + " · " + item.raw.node.name; } },
            },
          },
          scales: {
            x: {
              min: -0.5, max: Math.max(nodes.length, 1) - 0.5, title: axisTitle(spec.x_label), grid: { display: false },
              afterBuildTicks: only(nodes.map(function (n) { return n.x; })),
              ticks: { autoSkip: true, maxRotation: 0, callback: function (v) { return nodes[v] ? nodes[v].label : ""; } },
            },
            y: {
              min: -0.5, max: spec.lanes.length - 0.5, grid: { display: false },
              afterBuildTicks: only(spec.lanes.map(function (_, i) { return i; })),
              ticks: { callback: function (v) { return spec.lanes[v] || ""; } },
            },
          },
        },
      };
    },
  };

  function draw(figure) {
    if (figure.chart) return figure.chart;
    var source = document.getElementById(figure.getAttribute("data-chart"));
    var canvas = figure.querySelector("canvas");
    if (!source || !canvas) return null;
    var spec = JSON.parse(source.textContent);
    var build = KINDS[spec.kind];
    if (!build) throw new Error("unknown chart kind: " + spec.kind);
    figure.chart = new Chart(canvas, build(spec));
    return figure.chart;
  }

  // ---- live line charts over steps (the training run page) ----------------------------------

  function nearest(points, x) {  // points sorted by x; index of the point closest to x
    var lo = 0, hi = points.length - 1;
    while (hi - lo > 1) {
      var mid = (lo + hi) >> 1;
      if (points[mid][0] < x) lo = mid; else hi = mid;
    }
    return Math.abs(points[lo][0] - x) <= Math.abs(points[hi][0] - x) ? lo : hi;
  }

  function LineChart(parent, title, options) {
    options = options || {};
    var xLabel = options.xLabel || "step";
    this.xLabel = xLabel;
    this.series = [];  // {key, label, color, points, xy, value}
    this.root = html("figure", "chart", parent);
    var head = html("h3", "", this.root);
    html("span", "title", head, title);
    this.at = html("span", "at", head, "");
    var box = html("div", "chart-canvas", this.root);
    var canvas = html("canvas", "", box);
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", title + " over " + xLabel + "s (latest values in the legend and in the latest metrics table)");
    this.legend = html("ul", "legend", this.root);
    var self = this;
    this.chart = new Chart(canvas, {
      type: "line",
      data: { datasets: [] },
      options: {
        parsing: false,
        normalized: true,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        elements: {
          line: { borderWidth: 1.7, borderJoinStyle: "round" },
          // A lone point has no line to show it: draw it as a dot.
          point: { radius: function (ctx) { return ctx.dataset.data.length === 1 ? 2.6 : 0; }, hitRadius: 4, hoverRadius: 3.2 },
        },
        plugins: {
          legend: { display: false },  // the legend below the chart shows each series' value
          decimation: { enabled: true, algorithm: "min-max" },
          tooltip: {
            callbacks: {
              title: function (items) { return items.length ? xLabel + " " + items[0].parsed.x : ""; },
              label: function (item) { return item.dataset.label + ": " + fmt(item.parsed.y); },
            },
          },
        },
        scales: {
          x: { type: "linear", title: axisTitle(xLabel), ticks: { precision: 0, maxRotation: 0, callback: tick } },
          y: { title: axisTitle(options.yLabel), ticks: { callback: tick } },
        },
        onHover: function (event, elements, chart) {
          if (event.type === "mouseout") { self.showLatest(); return; }
          self.showAt(chart.scales.x.getValueForPixel(event.x));
        },
      },
    });
    canvas.addEventListener("pointerleave", function () { self.showLatest(); });
  }

  LineChart.prototype.setSeries = function (key, label, points) {
    var found = this.series.filter(function (s) { return s.key === key; })[0];
    if (!found) {
      found = { key: key, label: label, color: color(this.series.length), xy: [] };
      var item = html("li", "", this.legend);
      html("span", "swatch", item).style.background = found.color;
      html("span", "name", item, label);
      found.value = html("span", "val", item, "");
      this.chart.data.datasets.push({ label: label, data: found.xy, borderColor: found.color, backgroundColor: found.color, indexAxis: "x" });
      found.dataset = this.chart.data.datasets[this.chart.data.datasets.length - 1];
      this.series.push(found);
    }
    // Chart.js reads {x, y} objects (parsing: false); only the points it has not seen are converted.
    if (points.length < found.xy.length) found.xy = [];
    for (var i = found.xy.length; i < points.length; i++) found.xy.push({ x: points[i][0], y: points[i][1] });
    found.dataset.data = found.xy;
    found.points = points;
  };

  LineChart.prototype.render = function () {
    this.chart.update();
    this.showLatest();
  };

  LineChart.prototype.showLatest = function () {
    var last = -Infinity;
    this.series.forEach(function (s) {
      var p = s.points[s.points.length - 1];
      s.value.textContent = p ? fmt(p[1]) : "—";
      if (p && p[0] > last) last = p[0];
    });
    this.at.textContent = last === -Infinity ? "" : this.xLabel + " " + last;
  };

  LineChart.prototype.showAt = function (x) {
    var shown = null;
    this.series.forEach(function (s) {
      if (!s.points.length) { s.value.textContent = "—"; return; }
      var p = s.points[nearest(s.points, x)];
      if (shown === null || Math.abs(p[0] - x) < Math.abs(shown - x)) shown = p[0];
      s.value.textContent = fmt(p[1]);
    });
    if (shown !== null) this.at.textContent = this.xLabel + " " + shown;
  };

  window.SiteCharts = { LineChart: LineChart, draw: draw, fmt: fmt, COLORS: COLORS };
  Array.prototype.forEach.call(document.querySelectorAll("figure[data-chart]"), draw);
})();
