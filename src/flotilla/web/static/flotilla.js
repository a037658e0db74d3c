// flotilla's dashboard: follows the page's event stream (Server-Sent Events). Transcript fragments
// (escaped by the server) are appended; other events re-fetch the page's live region. Forms that
// carry data-confirm ask first. Nothing else: the pages work without this file, only not live.
(function () {
  "use strict";
  var body = document.body;
  document.addEventListener("submit", function (ev) {
    var ask = ev.target.getAttribute("data-confirm");
    if (ask && !window.confirm(ask)) ev.preventDefault();
  });
  var address = body.getAttribute("data-stream");
  if (!address || !window.EventSource) return;
  var dot = document.getElementById("live");
  var waiting = null, fetching = false, again = false;

  function refresh() {
    var region = document.getElementById("region");
    if (!region || !region.getAttribute("data-refresh")) return;
    var typing = document.activeElement;
    if (fetching || (typing && region.contains(typing) && typing.tagName === "TEXTAREA" && typing.value)) {
      again = true; // try again after the person has sent (or after the fetch in flight)
      schedule(1000);
      return;
    }
    fetching = true;
    fetch(region.getAttribute("data-refresh"), {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) region.innerHTML = html; })
      .finally(function () { fetching = false; if (again) { again = false; schedule(200); } });
  }

  function schedule(ms) {
    if (waiting) return;
    waiting = setTimeout(function () { waiting = null; refresh(); }, ms);
  }

  var source = new EventSource(address);
  source.onopen = function () { if (dot) dot.className = "live on"; };
  source.onerror = function () { if (dot) dot.className = "live off"; };
  source.onmessage = function (message) {
    var event = JSON.parse(message.data);
    var transcript = document.getElementById("transcript");
    if (event.html && transcript && !transcript.querySelector('[data-event="' + event.id + '"]')) {
      var empty = transcript.querySelector(".empty");
      if (empty) empty.remove();
      transcript.insertAdjacentHTML("beforeend", event.html);
    }
    if (event.refresh) schedule(150);
    body.setAttribute("data-last-event", String(event.id));
    document.dispatchEvent(new CustomEvent("flotilla:event", {detail: event}));
  };
})();
