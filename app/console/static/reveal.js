// A revealed number hides itself: after data-hide-after seconds its text is replaced.
// Loaded from /console/static (the Content-Security-Policy allows no inline script).
"use strict";
document.querySelectorAll("[data-hide-after]").forEach(function (el) {
  var seconds = Number(el.getAttribute("data-hide-after")) || 30;
  window.setTimeout(function () {
    el.textContent = el.getAttribute("data-hidden-text") || "••••";
    el.classList.add("hidden-number");
  }, seconds * 1000);
});
