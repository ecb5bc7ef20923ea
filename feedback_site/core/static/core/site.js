/* Loaded on every page (base.html). The Content-Security-Policy forbids style= attributes, so a
 * template that needs a computed size writes it as data-width (percent) or data-height (px), and
 * this applies it through the CSSOM, which the policy does not govern. */
(function () {
  "use strict";
  function apply(root) {
    root.querySelectorAll("[data-width]").forEach(function (el) {
      var value = parseFloat(el.getAttribute("data-width"));
      if (isFinite(value)) el.style.width = Math.max(0, Math.min(100, value)) + "%";
    });
    root.querySelectorAll("[data-height]").forEach(function (el) {
      var value = parseFloat(el.getAttribute("data-height"));
      if (isFinite(value)) el.style.height = value + "px";
    });
  }
  window.siteApplySizes = apply;
  apply(document);
})();
