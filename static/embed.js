/* hcpform embed loader (protocol v1). Paste where the form should appear:
     <script src="https://SITE/static/embed.js" data-form="service-request" async></script>
   Options: data-target="#id" (put the form in that element, replacing what it holds),
   data-title, data-booking-type, data-zip, data-urgency, data-lang ("es": in Spanish). Events on the form's container,
   bubbling to document: "hcpform:step" {form, step, name, total}, "hcpform:submitted"
   {form, reference}. Docs: docs/embedding.md. ES5, no dependencies, one global: hcpform. */
(function (window, document) {
  "use strict";
  var ns = window.hcpform = window.hcpform || {};
  if (ns.version) { ns.scan(); return; }  // the snippet is on the page twice: mount new tags only
  ns.version = 1;
  var frames = [];
  var SRC = /^(https?:\/\/[^\/?#]+)\/(?:[^?#]*\/)?static\/embed\.js(?:[?#]|$)/;
  var PASS = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
              "gclid", "gbraid", "wbraid"];
  var PREFILL = ["booking_type", "zip", "urgency"];
  var MIN_HEIGHT = 200, MAX_HEIGHT = 10000, ANSWER_MS = 5000;

  function param(name) {  // a value from the host page's own query string
    var m = new RegExp("[?&]" + name + "=([^&#]*)").exec(window.location.search);
    if (!m) { return ""; }
    try { return decodeURIComponent(m[1].replace(/\+/g, " ")); } catch (e) { return ""; }
  }

  function fire(el, name, detail) {
    var event;
    try {
      event = new window.CustomEvent(name, { bubbles: true, detail: detail });
    } catch (e) {
      event = document.createEvent("CustomEvent");
      event.initCustomEvent(name, true, false, detail);
    }
    el.dispatchEvent(event);
  }

  function frameUrl(origin, slug, script, path) {
    var loc = window.location;
    var q = ["parent_origin=" + encodeURIComponent(loc.protocol + "//" + loc.host),
             "parent_url=" + encodeURIComponent(loc.href.slice(0, 1000)),
             "parent_referrer=" + encodeURIComponent(document.referrer.slice(0, 1000))];
    var i, value;
    for (i = 0; i < PASS.length; i++) {
      value = param(PASS[i]);
      if (value) { q.push(PASS[i] + "=" + encodeURIComponent(value.slice(0, 200))); }
    }
    for (i = 0; i < PREFILL.length; i++) {
      value = script.getAttribute("data-" + PREFILL[i].replace("_", "-")) || param(PREFILL[i]);
      if (value) { q.push(PREFILL[i] + "=" + encodeURIComponent(value.slice(0, 100))); }
    }
    value = script.getAttribute("data-lang") || param("lang");  // "es": the form in Spanish
    if (/^[a-z]{2}(-[A-Za-z]{2})?$/.test(value)) { q.push("lang=" + value); }
    return origin + path + encodeURIComponent(slug) + "/?" + q.join("&");
  }

  function mount(script) {
    var match = SRC.exec(script.src || "");
    var slug = script.getAttribute("data-form");
    var selector = script.getAttribute("data-target");
    var container = selector ? document.querySelector(selector) : null;
    var inHead = !selector && script.parentNode === document.head;
    if (!match || !slug || script.getAttribute("data-hcpform") || !script.parentNode) { return; }
    if ((selector && !container) || (inHead && !document.body)) {
      if (document.readyState === "loading") {  // async ran before the page was parsed
        document.addEventListener("DOMContentLoaded", function () { mount(script); });
      }
      return;
    }
    script.setAttribute("data-hcpform", "mounted");
    if (container) {
      while (container.firstChild) { container.removeChild(container.firstChild); }
    } else {
      container = document.createElement("div");
      container.className = "hcpform-embed";
      if (inHead) { document.body.appendChild(container); }
      else { script.parentNode.insertBefore(container, script.nextSibling); }
    }
    var frame = { origin: match[1], slug: slug, container: container, name: null, seen: {},
                  iframe: document.createElement("iframe"), timer: null, answered: false };
    var iframe = frame.iframe;
    iframe.src = frameUrl(frame.origin, slug, script, "/embed/");
    iframe.title = script.getAttribute("data-title") || "Service request form";
    iframe.style.display = "block";
    iframe.style.width = "100%";
    iframe.style.border = "0";
    iframe.style.height = "640px";
    iframe.addEventListener("load", function () {
      iframe.contentWindow.postMessage({ type: "hcpform:hello", v: 1 }, frame.origin);
      if (!frame.answered && !frame.timer) {
        frame.timer = setTimeout(function () { refused(frame, script); }, ANSWER_MS);
      }
    });
    container.appendChild(iframe);
    frames.push(frame);
  }

  function refused(frame, script) {  // never answered: refused here (or blocked): link out instead
    if (frame.answered) { return; }
    var link = document.createElement("a");
    link.href = frameUrl(frame.origin, frame.slug, script, "/f/");
    link.target = "_blank";
    link.rel = "noopener";
    link.className = "hcpform-fallback";
    link.appendChild(document.createTextNode("Open the " + frame.iframe.title.toLowerCase()));
    frame.iframe.style.display = "none";
    frame.container.appendChild(link);
  }

  function receive(event) {
    var frame = null, data = event.data, i;
    for (i = 0; i < frames.length; i++) {
      if (frames[i].iframe.contentWindow === event.source) { frame = frames[i]; }
    }
    if (!frame || event.origin !== frame.origin || !data || data.v !== 1) { return; }
    frame.answered = true;
    clearTimeout(frame.timer);
    if (data.type === "hcpform:resize") {
      var h = Math.round(Number(data.height));
      if (h > 0) {
        frame.iframe.style.height = Math.min(Math.max(h, MIN_HEIGHT), MAX_HEIGHT) + "px";
      }
    } else if (data.type === "hcpform:step" && typeof data.name === "string" &&
               /^[a-z0-9-]{1,40}$/.test(data.name)) {
      if (data.name === frame.name) { return; }  // the same step again (an error shown)
      var first = frame.name === null;
      frame.name = data.name;
      var top = frame.iframe.getBoundingClientRect().top;
      if (!first && top < 0) { window.scrollBy(0, top); }
      fire(frame.container, "hcpform:step", {
        form: frame.slug, name: data.name,
        step: data.step === null ? null : parseInt(data.step, 10) || null,
        total: parseInt(data.total, 10) || null
      });
    } else if (data.type === "hcpform:submitted" && typeof data.reference === "string" &&
               /^[A-Za-z0-9-]{1,40}$/.test(data.reference)) {
      frame.name = "done";
      if (frame.seen[data.reference]) { return; }  // the confirmation page reloaded
      frame.seen[data.reference] = true;
      fire(frame.container, "hcpform:submitted", { form: frame.slug, reference: data.reference });
    }
  }

  ns.scan = function () {
    var current = document.currentScript;
    if (current && current.getAttribute("data-form")) { mount(current); }
    var tags = document.querySelectorAll("script[data-form]");  // async: currentScript may be gone
    for (var i = 0; i < tags.length; i++) { mount(tags[i]); }
  };
  window.addEventListener("message", receive);
  ns.scan();
})(window, document);
