// Every dashboard page: copy buttons, and one timestamp format (relative,
// exact time on hover) for times the server rendered and rows added live.
(function () {
  "use strict";
  var UNITS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
               ["hour", 3600], ["minute", 60]];

  function relative(date) {
    var seconds = Math.round((Date.now() - date.getTime()) / 1000);
    var past = seconds >= 0;
    seconds = Math.abs(seconds);
    if (seconds < 60) return "just now";
    for (var i = 0; i < UNITS.length; i++) {
      var count = Math.floor(seconds / UNITS[i][1]);
      if (count >= 1) {
        var text = count + " " + UNITS[i][0] + (count === 1 ? "" : "s");
        return past ? text + " ago" : "in " + text;
      }
    }
    return "just now";
  }

  function exact(date) {
    function pad(n) { return String(n).padStart(2, "0"); }
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  function timeElement(date) {
    var el = document.createElement("time");
    el.className = "tessera-when";
    el.dateTime = date.toISOString();
    el.title = exact(date);
    el.textContent = relative(date);
    return el;
  }

  function refreshTimes() {
    document.querySelectorAll("time.tessera-when[datetime]").forEach(function (el) {
      el.textContent = relative(new Date(el.getAttribute("datetime")));
    });
  }

  function copy(button) {
    var text = button.dataset.copy;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      button.classList.add("tessera-copied");
      window.setTimeout(function () { button.textContent = label; button.classList.remove("tessera-copied"); }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
    } else { fallback(text); done(); }
  }

  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    document.body.removeChild(area);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.tessera-copy");
    if (!button) return;
    event.preventDefault();
    copy(button);
  });

  window.tessera = {timeElement: timeElement, relative: relative};
  window.setInterval(refreshTimes, 30000);
})();
