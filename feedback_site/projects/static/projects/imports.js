// The upload form of the imports page.
// - The "queue for annotation" box follows the default of the chosen kind of file until the user
//   changes it by hand (pairs: queued; HH-RLHF: kept as pre-labelled data), and is hidden for
//   prompts, which have no answers to queue yet.
// - The form is sent with fetch: when the server refuses the file (the error names the line), the
//   page shows the error without reloading, so the chosen file stays chosen for a second try after
//   the user fixes it. A success follows the server's redirect like a normal submit.
(function () {
  "use strict";
  var defaultsNode = document.getElementById("queue-defaults");
  if (!document.getElementById("import-form") || !defaultsNode) return;
  var defaults = JSON.parse(defaultsNode.textContent);
  var touched = false;

  function form() { return document.getElementById("import-form"); }
  function chosenKind() {
    var checked = form().querySelector('input[name="kind"]:checked');
    return checked ? checked.value : "";
  }
  function sync(fromKindChange) {
    var kind = chosenKind();
    var wrapper = document.getElementById("queue-field");
    if (wrapper) wrapper.hidden = kind === "prompts";
    var checkbox = form().querySelector('input[name="queue_for_annotation"]');
    if (fromKindChange && checkbox && !touched && Object.prototype.hasOwnProperty.call(defaults, kind)) {
      checkbox.checked = defaults[kind];
    }
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!target.form || target.form.id !== "import-form") return;
    if (target.name === "queue_for_annotation") touched = true;
    if (target.name === "kind") sync(true);
  });

  document.addEventListener("submit", function (event) {
    var current = event.target;
    if (current.id !== "import-form") return;
    event.preventDefault();
    var button = current.querySelector('button[type="submit"]');
    if (button) button.disabled = true;
    var url = current.action || window.location.href;
    // redirect "manual": following the redirect here would use up the success message meant for the page.
    fetch(url, { method: "POST", body: new FormData(current), credentials: "same-origin", redirect: "manual" })
      .then(function (response) {
        if (response.type === "opaqueredirect" || response.ok) { window.location.assign(url); return null; }
        return response.text().then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("import-form");
          if (!fresh) { window.location.reload(); return; }
          // Keep the chosen file: move the live <input type=file> (its FileList cannot be set) into the new form.
          var liveFile = current.querySelector('input[type="file"]');
          var freshFile = fresh.querySelector('input[type="file"]');
          var adopted = document.importNode(fresh, true);
          current.replaceWith(adopted);
          var slot = adopted.querySelector('input[type="file"]');
          if (liveFile && freshFile && slot) slot.replaceWith(liveFile);
          sync(false);
          var error = adopted.querySelector(".form-errors, .errorlist, [role=alert]");
          if (error && error.scrollIntoView) error.scrollIntoView({ block: "center" });
        });
      })
      .catch(function () { current.submit(); })
      .finally(function () { var b = form().querySelector('button[type="submit"]'); if (b) b.disabled = false; });
  });
  sync(false);
})();
