// mimamori console: progressive enhancement only. Without this script every
// page still works; times stay in UTC (and say so) and charts are absent.
(function () {
  "use strict";
  var lang = document.documentElement.lang || "en";

  // Times: the server writes UTC; show them in the browser's time zone.
  function localiseTimes() {
    var fmt;
    try {
      fmt = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" });
    } catch (e) {
      return;
    }
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    document.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) {
        t.title = t.textContent;
        t.textContent = fmt.format(d);
      }
    });
    document.querySelectorAll("[data-tz]").forEach(function (e) { e.textContent = zone; });
  }

  var colours = {
    critical: "#8e0b14", high: "#a33a00", medium: "#6b5200", low: "#155b2f", informational: "#3d4a5c"
  };

  // The overview's alerts-over-time chart; a click opens the alert list
  // of the severity nearest the cursor.
  function alertsChart() {
    var el = document.getElementById("chart-alerts");
    var src = document.getElementById("chart-alerts-data");
    if (!el || !src || typeof uPlot === "undefined") return;
    var data = JSON.parse(src.textContent);
    if (!data.t.length) return;
    var series = [{}];
    var cols = [data.t];
    data.series.forEach(function (s) {
      series.push({ label: s.label, stroke: colours[s.severity], width: 2, points: { show: true } });
      cols.push(s.counts);
    });
    var width = Math.max(320, Math.min(el.clientWidth || 800, 960));
    var plot = new uPlot({
      width: width, height: 220, series: series,
      scales: { x: { time: true } },
      axes: [{}, { values: function (u, v) { return v.map(function (x) { return Math.round(x) === x ? x : ""; }); } }],
      cursor: { focus: { prox: 24 } },
      legend: { live: true }
    }, cols, el);
    plot.over.addEventListener("click", function () {
      var i = plot.cursor.idx;
      var s = null;
      plot.series.forEach(function (ser, k) { if (k > 0 && ser._focus) s = k; });
      if (s === null) {
        // No focused series: the one with the most alerts at this hour.
        var best = -1;
        for (var k = 1; k < cols.length; k++) {
          if (i != null && cols[k][i] > best) { best = cols[k][i]; s = k; }
        }
      }
      if (s !== null) {
        window.location.href = "/console/alerts?severity=" + encodeURIComponent(data.series[s - 1].severity);
      }
    });
  }

  // A file input with data-fills="ID" reads the chosen file into that
  // textarea (the form posts text; without script, paste it).
  function fileFills() {
    document.querySelectorAll("input[type=file][data-fills]").forEach(function (input) {
      input.addEventListener("change", function () {
        var target = document.getElementById(input.getAttribute("data-fills"));
        var f = input.files && input.files[0];
        if (!target || !f) return;
        var r = new FileReader();
        r.onload = function () { target.value = r.result; };
        r.readAsText(f);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localiseTimes();
    alertsChart();
    fileFills();
  });
})();
