/* KPI dashboard trend charts (Chart.js). Each canvas names its data in data-src (GET .../trend.json): no inline
   script (CSP script-src 'self'); the page shows its figures first, the charts fill in as their data arrives. */
(function () {
  "use strict";
  var COLOURS = ["#1f4e79", "#c0392b", "#f1c40f", "#2e86c1", "#7d3c98", "#27ae60"];

  function draw(canvas, spec) {
    if (!spec || !spec.labels) return;
    var rate = spec.type === "rate";
    new window.Chart(canvas, {
      type: rate ? "line" : "bar",
      data: {
        labels: spec.labels,
        datasets: spec.series.map(function (s, i) {
          return {
            label: s.label,
            data: s.data,
            borderColor: COLOURS[i % COLOURS.length],
            backgroundColor: COLOURS[i % COLOURS.length],
            spanGaps: true,
            tension: 0.2
          };
        })
      },
      options: {
        animation: false,
        responsive: true,
        plugins: { legend: { display: !rate, position: "bottom", labels: { boxWidth: 12 } } },
        scales: {
          x: { stacked: !rate, ticks: { maxRotation: 0, autoSkip: true } },
          y: rate ? { beginAtZero: true, suggestedMax: 100, ticks: { callback: function (v) { return v + " %"; } } }
                  : { stacked: true, beginAtZero: true, ticks: { precision: 0 } }
        }
      }
    });
  }

  function init() {
    if (!window.Chart) return;
    document.querySelectorAll("canvas.kpi-chart[data-src]").forEach(function (canvas) {
      fetch(canvas.dataset.src, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (spec) {
          draw(canvas, spec);
          canvas.dataset.drawn = spec ? "1" : "0";
        })
        .catch(function () { canvas.dataset.drawn = "0"; });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
