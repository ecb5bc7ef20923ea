// The "queue for annotation" checkbox follows the default of the chosen kind of file until the
// user changes it by hand (prompts and pairs: queued; HH-RLHF: kept as pre-labelled data).
(function () {
  "use strict";
  var form = document.getElementById("import-form");
  var defaultsNode = document.getElementById("queue-defaults");
  if (!form || !defaultsNode) return;
  var defaults = JSON.parse(defaultsNode.textContent);
  var checkbox = form.querySelector('input[name="queue_for_annotation"]');
  var touched = false;
  if (!checkbox) return;
  checkbox.addEventListener("change", function () { touched = true; });
  form.querySelectorAll('input[name="kind"]').forEach(function (radio) {
    radio.addEventListener("change", function () {
      if (!touched && radio.checked && Object.prototype.hasOwnProperty.call(defaults, radio.value)) {
        checkbox.checked = defaults[radio.value];
      }
    });
  });
})();
