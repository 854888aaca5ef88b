// paramedic web UI: live regions and confirmations. No dependencies, no inline script (CSP).
// An element with data-poll="/ui/partials/..." is refreshed from that URL every data-every ms,
// except while the tab is hidden or someone is typing into a form inside it.
(function () {
  "use strict";
  var submitting = false; // a form is on its way: leave the page as the user saw it

  function editing(region) {
    var active = document.activeElement;
    if (active && region.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) {
      return true;
    }
    var fields = region.querySelectorAll("input[type=text], textarea");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value.trim() !== "") { return true; }
    }
    return false;
  }

  function poll(region) {
    var url = region.getAttribute("data-poll");
    var every = parseInt(region.getAttribute("data-every") || "2000", 10);
    var last = null;
    var busy = false;
    var conn = document.querySelector("footer .conn");

    function tick() {
      if (busy || submitting || document.hidden || editing(region)) { return; }
      busy = true;
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { "X-Requested-With": "fetch" } })
        .then(function (r) {
          if (r.status === 401) { window.location.reload(); return null; }
          if (!r.ok) { throw new Error("HTTP " + r.status); }
          return r.text();
        })
        .then(function (html) {
          if (html === null) { return; }
          if (html !== last && !submitting) {
            region.innerHTML = html;
            last = html;
          }
          region.classList.remove("stale");
          if (conn) { conn.textContent = "live"; }
        })
        .catch(function () {
          region.classList.add("stale");
          if (conn) { conn.textContent = "offline: retrying"; }
        })
        .then(function () { busy = false; });
    }

    if (region.innerHTML.trim() === "") { tick(); }
    window.setInterval(tick, every);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) { tick(); } });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); return; }
    submitting = true;
    var buttons = form.querySelectorAll("button[type=submit]");
    for (var i = 0; i < buttons.length; i++) { buttons[i].disabled = true; }
  });

  window.addEventListener("pageshow", function () { // back/forward cache: make the page usable again
    submitting = false;
    var disabled = document.querySelectorAll("button[type=submit][disabled]");
    for (var i = 0; i < disabled.length; i++) { disabled[i].disabled = false; }
  });
  var regions = document.querySelectorAll("[data-poll]");
  for (var i = 0; i < regions.length; i++) { poll(regions[i]); }
})();
