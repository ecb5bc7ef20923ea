// The training launch form: shows the chosen method's settings (the reward-model picker only for
// methods that need one, the demonstration-snapshot picker instead of the preference snapshot for
// SFT, the rating-snapshot picker beside it for KTO), the LoRA settings only for LoRA, marks fields changed from their
// defaults, and resets them. Without JavaScript the form still works: the server renders the
// chosen method's section and ignores the others.
(function () {
  "use strict";
  var form = document.getElementById("training-form");
  if (!form) return;
  var needsReward = (form.dataset.needsReward || "").split(" ");
  var needsDemonstrations = (form.dataset.needsDemonstrations || "").split(" ");
  var rewardField = document.getElementById("reward-model-field");
  var snapshotField = document.getElementById("snapshot-field");
  var demonstrationField = document.getElementById("demonstration-snapshot-field");
  var ratingField = document.getElementById("rating-snapshot-field");
  var takesRatings = (form.dataset.takesRatings || "").split(" ");
  var lora = document.getElementById("lora-section");

  function chosen(name) {
    var input = form.querySelector('input[name="' + name + '"]:checked');
    return input ? input.value : "";
  }

  function hasError(section) { return !!section.querySelector(".has-error"); }

  function update() {
    var method = chosen("method");
    form.querySelectorAll("[data-method-section]").forEach(function (section) {
      section.hidden = section.dataset.methodSection !== method;
    });
    if (rewardField) rewardField.hidden = needsReward.indexOf(method) === -1 && !hasError(rewardField);
    var demos = needsDemonstrations.indexOf(method) !== -1;
    if (snapshotField) snapshotField.hidden = demos && !hasError(snapshotField);
    if (demonstrationField) demonstrationField.hidden = !demos && !hasError(demonstrationField);
    if (ratingField) ratingField.hidden = takesRatings.indexOf(method) === -1 && !hasError(ratingField);
    if (lora) lora.hidden = chosen("fine_tuning") !== "lora" && !hasError(lora);
  }

  function currentText(input) {
    if (input.type === "checkbox") return input.checked ? "true" : "false";
    return input.value.trim();
  }

  function same(value, fallback) {
    if (value === fallback) return true;
    var a = Number(value), b = Number(fallback);  // "2e-5" and "2e-05" are the same number
    return value !== "" && fallback !== "" && !isNaN(a) && !isNaN(b) && a === b;
  }

  function mark(input) {
    input.classList.toggle("changed", !same(currentText(input), input.dataset.default));
  }

  var inputs = form.querySelectorAll("[data-default]");
  inputs.forEach(function (input) {
    mark(input);
    input.addEventListener("input", function () { mark(input); });
    input.addEventListener("change", function () { mark(input); });
  });

  var reset = document.getElementById("reset-defaults");
  if (reset) {
    reset.addEventListener("click", function () {
      inputs.forEach(function (input) {
        if (input.type === "checkbox") input.checked = input.dataset.default === "true";
        else input.value = input.dataset.default;
        mark(input);
      });
    });
  }

  form.querySelectorAll('input[name="method"], input[name="fine_tuning"]').forEach(function (radio) {
    radio.addEventListener("change", update);
  });
  update();
})();
