// The site's only script (the pages work without it): the layer search box on the index, and
// the arrow keys (or j/k) moving between layer pages. No inline script: the CSP forbids it.
(function () {
  "use strict";

  // Anchored targets stop below the sticky bar (style.css's scroll-margin-top reads this); its
  // height changes with the width, as its rows wrap.
  var topbar = document.querySelector(".topbar");
  function measureTopbar() {
    document.documentElement.style.setProperty("--topbar-height", topbar.offsetHeight + "px");
  }
  if (topbar) {
    measureTopbar();
    window.addEventListener("resize", measureTopbar);
  }

  var search = document.getElementById("layer-search");
  if (search) {
    var box = document.getElementById("layer-filter");
    var count = document.getElementById("layer-filter-count");
    var tables = Array.prototype.slice.call(document.querySelectorAll("table.searchable"));
    search.hidden = false;
    box.addEventListener("input", function () {
      var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
      var counts = tables.map(function (table) {
        var rows = Array.prototype.slice.call(table.tBodies[0].rows);
        var shown = 0;
        rows.forEach(function (row) {
          var text = (row.getAttribute("data-search") || row.textContent).toLowerCase();
          var match = words.every(function (word) { return text.indexOf(word) !== -1; });
          row.hidden = !match;
          if (match) { shown += 1; }
        });
        return shown + " of " + rows.length + " " + table.getAttribute("data-noun");
      });
      count.textContent = words.length ? counts.join(", ") : "";
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.defaultPrevented) { return; }
    var target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) { return; }
    if (event.key === "/" && search) {
      event.preventDefault();
      document.getElementById("layer-filter").focus();
      return;
    }
    var rel = { ArrowLeft: "prev", k: "prev", ArrowRight: "next", j: "next" }[event.key];
    var link = rel && document.querySelector('a[rel="' + rel + '"]');
    if (link) { window.location.href = link.href; }
  });
}());
