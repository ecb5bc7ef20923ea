// Small inline-SVG line charts for the training run page: no library, no build step.
//
//   var chart = new TrainingCharts.LineChart(parentElement, "Loss");
//   chart.setSeries("loss", "Loss", [[step, value], ...]);   // add or replace a series
//   chart.render();
//
// Every piece of text (titles, labels, values) is written with textContent, never as HTML.
// Long series are reduced to the minimum and maximum per pixel column before drawing, so spikes
// stay visible and a run with 100k points draws as fast as one with 500.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  // The SVG's user units are the chart's CSS pixels (the viewBox follows the width it is given),
  // so axis labels keep their size whatever the layout; `resize()` is called when it changes.
  var H = 200, M = { right: 14, top: 8, bottom: 24 };
  var CHAR_PX = 6.4;  // width of one tick-label character at the axis font size
  var PH = H - M.top - M.bottom;
  var COLORS = ["#2456d6", "#e8590c", "#2b8a3e", "#862e9c", "#0c8599", "#c92a2a", "#5c940d", "#495057"];

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

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function html(tag, className, parent, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function niceStep(span, count) {
    var raw = span / Math.max(count, 1);
    var power = Math.pow(10, Math.floor(Math.log10(raw)));
    var unit = raw / power;
    return (unit < 1.5 ? 1 : unit < 3 ? 2 : unit < 7 ? 5 : 10) * power;
  }

  function ticks(min, max, count, integer) {
    var step = niceStep(max - min, count);
    if (integer) step = Math.max(1, Math.round(step));
    var out = [];
    var first = Math.ceil(min / step - 1e-9);
    for (var i = 0; i < 50; i++) {
      var v = (first + i) * step;
      if (v > max + step * 1e-9) break;
      out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    }
    return out;
  }

  function tickLabel(value, step) {
    var abs = Math.abs(value);
    if (value === 0) return "0";
    if (abs >= 1e4 || abs < 1e-3 || step < 1e-3) return fmt(value);
    var decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));  // steps are 1, 2 or 5 x 10^k
    return value.toFixed(Math.min(decimals, 4));
  }

  function nearest(points, x) {  // points sorted by x; index of the point closest to x
    var lo = 0, hi = points.length - 1;
    while (hi - lo > 1) {
      var mid = (lo + hi) >> 1;
      if (points[mid][0] < x) lo = mid; else hi = mid;
    }
    return Math.abs(points[lo][0] - x) <= Math.abs(points[hi][0] - x) ? lo : hi;
  }

  function LineChart(parent, title) {
    this.series = [];  // {key, label, color, points}
    this.root = html("figure", "chart", parent);
    var head = html("h3", "", this.root);
    html("span", "title", head, title);
    this.at = html("span", "at", head, "");
    this.svg = el("svg", { role: "img", "aria-label": title, preserveAspectRatio: "xMidYMid meet" }, this.root);
    this.grid = el("g", { "class": "grid" }, this.svg);
    this.axes = el("g", { "class": "axis" }, this.svg);
    this.frame = el("rect", { "class": "frame", y: M.top, height: PH }, this.svg);
    this.lines = el("g", {}, this.svg);
    this.hover = el("g", { visibility: "hidden" }, this.svg);
    this.cursor = el("line", { "class": "cursor", y1: M.top, y2: M.top + PH }, this.hover);
    this.overlay = el("rect", { y: M.top, height: PH, fill: "transparent" }, this.svg);
    this.legend = html("ul", "legend", this.root);
    this.resize();
    var self = this;
    this.overlay.addEventListener("pointermove", function (event) { self.pointAt(event); });
    this.overlay.addEventListener("pointerleave", function () { self.hideCursor(); });
  }

  LineChart.prototype.resize = function () {
    var width = Math.max(240, Math.round(this.root.clientWidth - 2 * 11));  // the figure's padding
    if (width === this.W) return false;
    this.W = width;
    this.svg.setAttribute("viewBox", "0 0 " + width + " " + H);
    this.layout(this.left || 40);
    return true;
  };

  // The plot starts right of the widest y-axis label.
  LineChart.prototype.layout = function (left) {
    this.left = left;
    this.PW = this.W - left - M.right;
    [this.frame, this.overlay].forEach(function (rect) {
      rect.setAttribute("x", left);
      rect.setAttribute("width", this.PW);
    }, this);
  };

  LineChart.prototype.setSeries = function (key, label, points) {
    var found = this.series.filter(function (s) { return s.key === key; })[0];
    if (!found) {
      found = { key: key, label: label, color: COLORS[this.series.length % COLORS.length] };
      found.path = el("path", { "class": "series", stroke: found.color }, this.lines);
      found.dot = el("circle", { "class": "dot", r: 3.2, fill: found.color }, this.hover);
      found.single = el("circle", { r: 2.6, fill: found.color, visibility: "hidden" }, this.lines);
      var item = html("li", "", this.legend);
      var swatch = html("span", "swatch", item);
      swatch.style.background = found.color;
      html("span", "name", item, label);
      found.value = html("span", "val", item, "");
      this.series.push(found);
    }
    found.points = points;
  };

  LineChart.prototype.domain = function () {
    var x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    this.series.forEach(function (s) {
      s.points.forEach(function (p) {
        if (p[0] < x0) x0 = p[0];
        if (p[0] > x1) x1 = p[0];
        if (p[1] < y0) y0 = p[1];
        if (p[1] > y1) y1 = p[1];
      });
    });
    if (x0 === Infinity) return null;
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    if (y1 === y0) { var pad = Math.abs(y0) * 0.1 || 1; y0 -= pad; y1 += pad; }
    else { var margin = (y1 - y0) * 0.06; y0 -= margin; y1 += margin; }
    return { x0: x0, x1: x1, y0: y0, y1: y1 };
  };

  LineChart.prototype.render = function () {
    var d = this.domain();
    if (!d) return;
    this.d = d;
    var yt = ticks(d.y0, d.y1, 4, false), ystep = yt.length > 1 ? yt[1] - yt[0] : 1;
    var ylabels = yt.map(function (v) { return tickLabel(v, ystep); });
    var widest = ylabels.reduce(function (n, text) { return Math.max(n, text.length); }, 1);
    this.layout(Math.round(widest * CHAR_PX + 12));
    var PW = this.PW, left = this.left;
    var sx = function (x) { return left + (x - d.x0) / (d.x1 - d.x0) * PW; };
    var sy = function (y) { return M.top + PH - (y - d.y0) / (d.y1 - d.y0) * PH; };
    this.sx = sx; this.sy = sy;

    while (this.grid.firstChild) this.grid.removeChild(this.grid.firstChild);
    while (this.axes.firstChild) this.axes.removeChild(this.axes.firstChild);
    var grid = this.grid, axes = this.axes;
    yt.forEach(function (v, i) {
      var y = sy(v).toFixed(1);
      el("line", { x1: left, x2: left + PW, y1: y, y2: y }, grid);
      el("text", { x: left - 6, y: y, "text-anchor": "end", "dominant-baseline": "middle" }, axes).textContent = ylabels[i];
    });
    ticks(d.x0, d.x1, 5, true).forEach(function (v) {
      var x = sx(v).toFixed(1);
      el("line", { x1: x, x2: x, y1: M.top, y2: M.top + PH }, grid);
      el("text", { x: x, y: M.top + PH + 15, "text-anchor": "middle" }, axes).textContent = fmt(v);
    });

    this.series.forEach(function (s) {
      var pts = s.points, path = [];
      if (pts.length > PW * 2) {  // min and max per pixel column
        var column = -1, lo = null, hi = null;
        var flush = function () {
          if (lo === null) return;
          var first = lo[0] <= hi[0] ? lo : hi, second = first === lo ? hi : lo;
          path.push(first);
          if (second !== first) path.push(second);
        };
        pts.forEach(function (p) {
          var c = Math.floor(sx(p[0]));
          if (c !== column) { flush(); column = c; lo = hi = p; }
          else { if (p[1] < lo[1]) lo = p; if (p[1] > hi[1]) hi = p; }
        });
        flush();
      } else {
        path = pts;
      }
      var dAttr = path.map(function (p, i) { return (i ? "L" : "M") + sx(p[0]).toFixed(1) + " " + sy(p[1]).toFixed(1); }).join("");
      s.path.setAttribute("d", dAttr);
      if (pts.length === 1) {
        s.single.setAttribute("cx", sx(pts[0][0]).toFixed(1));
        s.single.setAttribute("cy", sy(pts[0][1]).toFixed(1));
        s.single.setAttribute("visibility", "visible");
      } else {
        s.single.setAttribute("visibility", "hidden");
      }
    });
    if (this.hoverX === undefined) this.showLatest();
    else this.showAt(this.hoverX);
  };

  LineChart.prototype.showLatest = function () {
    var last = -Infinity;
    this.series.forEach(function (s) {
      var p = s.points[s.points.length - 1];
      s.value.textContent = p ? fmt(p[1]) : "—";
      if (p && p[0] > last) last = p[0];
    });
    this.at.textContent = last === -Infinity ? "" : "step " + last;
  };

  LineChart.prototype.showAt = function (x) {
    var self = this, shown = null;
    this.series.forEach(function (s) {
      if (!s.points.length) { s.value.textContent = "—"; s.dot.setAttribute("visibility", "hidden"); return; }
      var p = s.points[nearest(s.points, x)];
      if (shown === null || Math.abs(p[0] - x) < Math.abs(shown - x)) shown = p[0];
      s.value.textContent = fmt(p[1]);
      s.dot.setAttribute("cx", self.sx(p[0]).toFixed(1));
      s.dot.setAttribute("cy", self.sy(p[1]).toFixed(1));
      s.dot.setAttribute("visibility", "visible");
    });
    if (shown !== null) {
      var cx = this.sx(shown).toFixed(1);
      this.cursor.setAttribute("x1", cx);
      this.cursor.setAttribute("x2", cx);
      this.at.textContent = "step " + shown;
    }
  };

  LineChart.prototype.pointAt = function (event) {
    if (!this.d) return;
    var box = this.svg.getBoundingClientRect();
    var px = (event.clientX - box.left) / box.width * this.W;
    this.hoverX = this.d.x0 + (px - this.left) / this.PW * (this.d.x1 - this.d.x0);
    this.hover.setAttribute("visibility", "visible");
    this.showAt(this.hoverX);
  };

  LineChart.prototype.hideCursor = function () {
    this.hoverX = undefined;
    this.hover.setAttribute("visibility", "hidden");
    this.showLatest();
  };

  window.TrainingCharts = { LineChart: LineChart, fmt: fmt };
})();
