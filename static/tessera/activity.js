// The tenant landing page's activity charts (uPlot, static/vendor/uplot):
// token requests by outcome and by client, hook duration p50/p99 and error
// rate, for the last hour or day, from the counts the page embeds.
(function () {
  "use strict";
  var OUTCOME_COLORS = {ok: "#2e7d32", server_error: "#c62828", too_many_requests: "#ef6c00",
                        temporarily_unavailable: "#6d4c41", invalid_client: "#8e24aa"};
  var PALETTE = ["#3949ab", "#00897b", "#f4511e", "#8e24aa", "#6d4c41", "#c0ca33", "#546e7a"];
  var WINDOW_NAMES = {hour: "last hour", day: "last day"};
  var charts = [];

  function color(name, index) { return OUTCOME_COLORS[name] || PALETTE[index % PALETTE.length]; }

  function options(el, series, yLabel) {
    return {
      width: Math.max(el.clientWidth, 200), height: 170,
      series: [{}].concat(series),
      scales: {x: {time: true}, y: {range: function (u, min, max) { return [0, Math.max((max || 0) * 1.15, 1)]; }}},
      axes: [{space: 60}, {label: yLabel, size: 50}],
      legend: {live: false},
      cursor: {drag: {x: false, y: false}}
    };
  }

  function line(label, stroke) { return {label: label, stroke: stroke, width: 2, points: {show: false}}; }
  // Minutes without runs have no duration: dots show lone measurements.
  function dots(label, stroke) { return {label: label, stroke: stroke, width: 2, points: {show: true, size: 6, fill: stroke}}; }

  function draw(id, series, columns, yLabel) {
    var el = document.getElementById(id);
    el.textContent = "";
    charts.push(new window.uPlot(options(el, series, yLabel), columns, el));
  }

  function render(data, windowName) {
    charts.forEach(function (chart) { chart.destroy(); });
    charts = [];
    var w = data[windowName], names = data.client_names, t = w.t;
    var outcomeNames = Object.keys(w.outcomes).sort(function (a, b) { return a === "ok" ? -1 : b === "ok" ? 1 : a < b ? -1 : 1; });
    if (!outcomeNames.length) outcomeNames = ["ok"];
    draw("chart-outcomes", outcomeNames.map(function (name, i) { return line(name, color(name, i)); }),
      [t].concat(outcomeNames.map(function (name) { return w.outcomes[name] || t.map(function () { return 0; }); })),
      "requests");
    var clientIds = Object.keys(w.clients);
    var clientSeries = clientIds.map(function (id, i) { return line(names[id] || id, PALETTE[i % PALETTE.length]); });
    var clientColumns = clientIds.map(function (id) { return w.clients[id]; });
    if (w.other_clients) { clientSeries.push(line("other clients", "#90a4ae")); clientColumns.push(w.other_clients); }
    if (!clientIds.length) { clientSeries = [line("requests", PALETTE[0])]; clientColumns = [t.map(function () { return 0; })]; }
    draw("chart-clients", clientSeries, [t].concat(clientColumns), "requests");
    draw("chart-duration", [dots("p50", "#3949ab"), dots("p99", "#f4511e")], [t, w.p50, w.p99], "ms");
    draw("chart-errors", [dots("error rate", "#c62828")], [t, w.error_rate], "%");
    document.getElementById("activity-totals").textContent =
      w.requests + " token request" + (w.requests === 1 ? "" : "s") + " and " + w.runs +
      " hook run" + (w.runs === 1 ? "" : "s") + " in the " + WINDOW_NAMES[windowName] +
      (w.requests ? "." : ": the charts fill in as clients ask for tokens.");
    document.querySelectorAll(".tessera-window button").forEach(function (button) {
      var on = button.dataset.window === windowName;
      button.setAttribute("aria-pressed", on ? "true" : "false");
      button.classList.toggle("tessera-secondary", !on);
    });
    document.getElementById("activity").dataset.rendered = windowName;
  }

  function init() {
    var source = document.getElementById("tessera-activity");
    if (!source || !window.uPlot) return;
    var data = JSON.parse(source.textContent);
    var current = "hour";
    render(data, current);
    document.querySelectorAll(".tessera-window button").forEach(function (button) {
      button.addEventListener("click", function () { current = button.dataset.window; render(data, current); });
    });
    var resizing = null;
    window.addEventListener("resize", function () {
      window.clearTimeout(resizing);
      resizing = window.setTimeout(function () {
        charts.forEach(function (chart) {
          chart.setSize({width: Math.max(chart.root.parentNode.clientWidth, 200), height: 170});
        });
      }, 100);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
