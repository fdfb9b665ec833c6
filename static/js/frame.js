/* hcpform, embed pages only: the frame side of the embed protocol (v1, see docs/embedding.md).
   Tells the page around the iframe our height, the step shown and, once sent, the reference;
   never anything a person typed. Messages go only to a parent origin the form allows
   (<body data-parent-origins>), learnt from ?parent_origin= on the first page or from the
   loader's "hcpform:hello", which it repeats on every page load of the iframe. */
(function () {
  "use strict";
  var parent = window.parent;
  if (!parent || parent === window) { return; }
  var body = document.body;
  var allowed = (body.getAttribute("data-parent-origins") || "").split(" ");
  var target = null;
  var lastHeight = 0;
  var announced = false;

  function isAllowed(origin) {
    return !!origin && origin !== "null" && allowed.indexOf(origin) !== -1;
  }

  function send(message) {
    if (!target) { return; }
    message.v = 1;
    parent.postMessage(message, target);
  }

  function reportHeight(always) {
    var height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    if (always || height !== lastHeight) {
      lastHeight = height;
      send({ type: "hcpform:resize", height: height });
    }
  }

  function announce() {
    var form = body.getAttribute("data-form");
    var reference = body.getAttribute("data-reference");
    var step = body.getAttribute("data-step");
    if (reference) {
      send({ type: "hcpform:submitted", form: form, reference: reference });
    } else if (step) {
      var number = parseInt(body.getAttribute("data-step-number"), 10);
      send({ type: "hcpform:step", form: form, name: step, step: isNaN(number) ? null : number,
             total: parseInt(body.getAttribute("data-step-total"), 10) || null });
    }
  }

  function connect(origin) {
    if (!isAllowed(origin)) { return; }
    target = origin;
    if (!announced) { announced = true; announce(); }
    reportHeight(true);
  }

  window.addEventListener("message", function (event) {
    var data = event.data;
    if (event.source === parent && data && data.type === "hcpform:hello" && data.v === 1) {
      connect(event.origin);
    }
  });

  var hint = /[?&]parent_origin=([^&#]*)/.exec(window.location.search);
  if (hint) {
    try { connect(decodeURIComponent(hint[1])); } catch (e) { /* a malformed hint: wait for hello */ }
  }
  if (window.ResizeObserver) {
    new window.ResizeObserver(function () { reportHeight(false); }).observe(document.documentElement);
  }
  window.addEventListener("load", function () { reportHeight(false); });
  window.addEventListener("resize", function () { reportHeight(false); });
})();
