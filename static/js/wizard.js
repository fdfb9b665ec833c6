/* hcpform wizard enhancements. Nothing needs this file: it focuses the error summary (and makes
   its links focus the field, showing its label), counts characters, formats phone numbers and
   guards double submits. Embed pages also load frame.js, which talks to the parent page. */
(function () {
  "use strict";
  var summary = document.querySelector("[data-error-summary]");
  if (summary) {
    summary.focus();
    summary.addEventListener("click", function (event) {
      var link = event.target.closest ? event.target.closest("a[href^='#']") : null;
      var input = link && document.getElementById(link.getAttribute("href").slice(1));
      if (!input || input.id === "main") { return; }
      var fieldset = input.closest("fieldset");
      var caption = (fieldset && fieldset.querySelector("legend")) ||
                    document.querySelector("label[for='" + input.id + "']") || input;
      event.preventDefault();
      caption.scrollIntoView();
      input.focus({ preventScroll: true });
    });
  }

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
    var timer = null;  // the counter is a live region: update it when typing pauses
    area.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(update, 400); });
    if (area.value) { update(); }
  });

  Array.prototype.forEach.call(document.querySelectorAll("input[data-phone]"), function (input) {
    input.addEventListener("blur", function () {
      var typed = input.value.trim();
      // An international number (+44 …) keeps its own form: never fold it into (xxx) xxx-xxxx.
      if (typed.charAt(0) === "+" && typed.replace(/[^\d+]/g, "").indexOf("+1") !== 0) { return; }
      var d = typed.replace(/\D/g, "");
      if (d.length === 11 && d.charAt(0) === "1") { d = d.slice(1); }
      if (d.length === 10) { input.value = "(" + d.slice(0, 3) + ") " + d.slice(3, 6) + "-" + d.slice(6); }
    });
  });

  // "Show more days" reveals the next three days in place (without JS it reloads with them).
  var more = document.querySelector("[data-show-more]");
  if (more) {
    more.addEventListener("click", function (event) {
      var hidden = document.querySelectorAll("[data-slot-day][hidden]");
      if (!hidden.length) { return; }
      event.preventDefault();
      for (var i = 0; i < 3 && i < hidden.length; i++) { hidden[i].hidden = false; }
      var first = hidden[0].querySelector("input");
      if (first) { first.focus(); }
      if (hidden.length <= 3) { more.parentNode.hidden = true; }
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("form"), function (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("[data-prevent-double-click]");
      if (button) { setTimeout(function () { button.disabled = true; }, 0); }
    });
  });
})();
