// Shows the "pairs per prompt" field only when sampled pairing is chosen.
(function () {
  "use strict";
  var form = document.getElementById("generate-form");
  var box = document.getElementById("pairs-per-prompt");
  if (!form || !box) return;
  function update() {
    var chosen = form.querySelector('input[name="pairing"]:checked');
    box.hidden = !(chosen && chosen.value === "sample");
  }
  form.querySelectorAll('input[name="pairing"]').forEach(function (radio) { radio.addEventListener("change", update); });
  update();
})();
