/* hcpform wizard enhancements. Nothing needs this file: it focuses the error summary (and makes
   its links focus the field, showing its label), counts characters, formats phone numbers,
   sends photos as they are chosen and guards double submits. Embed pages also load frame.js, which talks to the parent page. */
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

  // The page's language: its texts on <body data-messages> (none in English), keyed by English.
  var messages = {};
  try { messages = JSON.parse(document.body.getAttribute("data-messages") || "{}"); } catch (e) { messages = {}; }
  function t(text, values) {
    return (messages[text] || text).replace(/%\((\w+)\)s/g, function (all, name) {
      return values && name in values ? values[name] : all;
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("textarea[data-maxlength]"), function (area) {
    var max = parseInt(area.getAttribute("data-maxlength"), 10);
    var counter = document.getElementById(area.id + "-count");
    if (!counter) { return; }
    function update() {
      var left = max - area.value.length;
      counter.textContent = left >= 0 ? t("You have %(count)s characters remaining", {count: left.toLocaleString()})
                                      : t("You have %(count)s characters too many", {count: (-left).toLocaleString()});
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

  // Photos: each chosen file goes at once (a progress bar on slow connections), and "Remove"
  // works in place. Without JS the step's own form carries the files (see _photos.html).
  var box = document.querySelector("[data-photos]");
  if (box && box.getAttribute("data-upload-url") && window.FormData && window.XMLHttpRequest) {
    var input = box.querySelector("input[type=file]"), list = box.querySelector("[data-photo-list]");
    var status = box.querySelector("[data-photo-status]"), add = box.querySelector("[data-photo-add]");
    var form = box.closest("form"), csrf = form.querySelector("[name=csrf_token]").value;
    var max = +box.getAttribute("data-max"), maxBytes = +box.getAttribute("data-max-bytes");
    var busy = 0;
    box.querySelector("[data-photo-send]").hidden = true;
    function count() { return list.querySelectorAll("[data-photo]").length; }
    function say(text, error) {
      status.textContent = text;
      status.className = error ? "photo-status error-message" : "photo-status";
    }
    function refresh() {
      add.hidden = count() >= max;
      Array.prototype.forEach.call(list.querySelectorAll("img"), function (img, i) {
        img.alt = t("Photo %(number)s you added", {number: i + 1});
      });
    }
    function item(key, thumb, w, h) {
      var li = document.createElement("li"), img = new Image(), button = document.createElement("button");
      var side = Math.max(w, h, 1), scale = Math.min(1, 160 / side);
      li.className = "photo-item"; li.setAttribute("data-photo", key);
      img.className = "photo-thumb"; img.src = thumb;
      img.width = Math.round(w * scale); img.height = Math.round(h * scale);
      button.type = "submit"; button.name = "remove_photo"; button.value = key;
      button.className = "button button--secondary button--small"; button.textContent = t("Remove photo");
      li.appendChild(img); li.appendChild(button); list.appendChild(li);
    }
    function send(file) {
      if (file.size > maxBytes) {
        return say(t("%(name)s: This photo is larger than %(mb)s MB. Choose a smaller one.", {name: file.name, mb: box.getAttribute("data-max-mb")}), true);
      }
      var data = new FormData(), xhr = new XMLHttpRequest(), bar = document.createElement("progress");
      data.append("csrf_token", csrf); data.append("photos", file);
      bar.className = "photo-progress"; bar.max = 100; bar.value = 0;
      bar.setAttribute("aria-label", t("Sending %(name)s", {name: file.name}));
      box.insertBefore(bar, add); busy++;
      xhr.upload.onprogress = function (e) { if (e.lengthComputable) { bar.value = 100 * e.loaded / e.total; } };
      xhr.onloadend = function () {
        var answer = {}; busy--; bar.parentNode.removeChild(bar);
        try { answer = JSON.parse(xhr.responseText); } catch (err) { answer = {}; }
        if (xhr.status === 201) {
          item(answer.key, answer.thumb, answer.width, answer.height);
          say(t("%(added)s of %(count)s photos added.", {added: answer.count, count: answer.max}));
        } else {
          say(answer.error || t("%(name)s: The photo couldn't be sent. Check your connection and try again.", {name: file.name}), true);
        }
        refresh();
      };
      xhr.open("POST", box.getAttribute("data-upload-url")); xhr.send(data);
    }
    input.addEventListener("change", function () {
      Array.prototype.forEach.call(input.files, send);
      input.value = "";  // sent already: the step's own post must not carry them again
    });
    list.addEventListener("click", function (event) {
      var button = event.target.closest ? event.target.closest("[name=remove_photo]") : null;
      if (!button) { return; }
      event.preventDefault();
      var data = new FormData(), xhr = new XMLHttpRequest();
      data.append("csrf_token", csrf);
      xhr.onloadend = function () {
        if (xhr.status !== 200) { return say(t("The photo couldn't be removed. Try again."), true); }
        var li = button.closest("[data-photo]"); li.parentNode.removeChild(li);
        say(t("%(added)s of %(count)s photos added.", {added: count(), count: max})); refresh(); input.focus();
      };
      xhr.open("POST", box.getAttribute("data-remove-url").replace("KEY", button.value)); xhr.send(data);
    });
    form.addEventListener("submit", function (event) {
      if (busy) { event.preventDefault(); say(t("Wait a moment: your photos are still being sent."), true); }
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("form"), function (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("[data-prevent-double-click]");
      if (button) { setTimeout(function () { button.disabled = true; }, 0); }
    });
  });
})();
