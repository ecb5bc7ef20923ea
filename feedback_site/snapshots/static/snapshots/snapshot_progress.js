// Live status of snapshots being built in the background: every row still pending or running is
// polled through the REST API until it is ready or failed, and its cells are updated in place
// (textContent only: nothing from the server is interpreted as HTML). The downloads appear once
// the snapshot is ready.
(function () {
  "use strict";
  var INTERVAL_MS = 1500;
  var LABELS = { pending: "Pending", running: "Running", ready: "Ready", failed: "Failed" };

  function cell(row, name) { return row.querySelector('[data-field="' + name + '"]'); }
  function set(row, name, value) { var el = cell(row, name); if (el) el.textContent = value; }

  function render(row, snap) {
    row.dataset.status = snap.status;
    var status = cell(row, "status");
    if (status) { status.textContent = LABELS[snap.status] || snap.status; status.className = "status status-" + snap.status; }
    var busy = snap.status === "pending" || snap.status === "running";
    set(row, "progress", busy ? snap.progress_done.toLocaleString() + " / " + snap.progress_total.toLocaleString() + " pairs" : "");
    set(row, "error", snap.error || "");
    if (snap.status === "ready") {
      var hash = cell(row, "hash");
      if (hash) { hash.textContent = snap.content_hash.slice(0, 12); hash.title = "sha256 " + snap.content_hash; }
      set(row, "pair_count", snap.pair_count);
      set(row, "preference_count", snap.preference_count);
      set(row, "judgment_count", snap.judgment_count);
      set(row, "dropped_count", snap.dropped_count);
      var downloads = cell(row, "downloads");
      if (downloads) downloads.hidden = false;
    }
    return busy;
  }

  function poll(row) {
    fetch(row.dataset.apiUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (snap) { if (render(row, snap)) setTimeout(function () { poll(row); }, INTERVAL_MS); })
      .catch(function () { setTimeout(function () { poll(row); }, INTERVAL_MS * 4); });
  }

  document.querySelectorAll("tr.snapshot-row").forEach(function (row) {
    if (row.dataset.status === "pending" || row.dataset.status === "running") poll(row);
  });
})();
