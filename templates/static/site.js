// The site's only script (the pages work without it): the layer search box on the index, the
// card filter and "go to filter" on layer pages, and keys: the arrows (or j/k) between layer
// pages, / to search, g to go to a filter, ? for the list of them. No inline script: the CSP
// forbids it.
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
      var nouns = [];
      var counts = {};  // per noun: the tables of one kind (a stage's conv layers each) count as one
      tables.forEach(function (table) {
        var rows = Array.prototype.slice.call(table.tBodies[0].rows);
        var shown = 0;
        rows.forEach(function (row) {
          var text = (row.getAttribute("data-search") || row.textContent).toLowerCase();
          var match = words.every(function (word) { return text.indexOf(word) !== -1; });
          row.hidden = !match;
          if (match) { shown += 1; }
        });
        var stage = table.closest("section.stage");  // a stage with no match folds away
        if (stage) { stage.hidden = shown === 0; }
        var noun = table.getAttribute("data-noun");
        if (!counts[noun]) { counts[noun] = [0, 0]; nouns.push(noun); }
        counts[noun][0] += shown;
        counts[noun][1] += rows.length;
      });
      count.textContent = words.length ? nouns.map(function (noun) {
        return counts[noun][0] + " of " + counts[noun][1] + " " + noun;
      }).join(", ") : "";
    });
  }

  // A layer page's filter cards: show only those with a health finding, and "go to filter N".
  var cardFilter = document.getElementById("card-filter");
  var choices = cardFilter ? Array.prototype.slice.call(cardFilter.querySelectorAll("button[data-show]")) : [];
  function showCards(key) {
    var shown = 0;
    var total = 0;
    Array.prototype.slice.call(document.querySelectorAll("[data-findings]")).forEach(function (item) {
      var found = item.getAttribute("data-findings").split(" ").filter(Boolean);
      var match = key === "" || (key === "*" ? found.length > 0 : found.indexOf(key) !== -1);
      item.hidden = !match;
      if (item.tagName === "ARTICLE") {
        total += 1;
        if (match) { shown += 1; }
      }
    });
    choices.forEach(function (choice) {
      choice.setAttribute("aria-pressed", String(choice.getAttribute("data-show") === key));
    });
    var count = document.getElementById("card-filter-count");
    if (count) { count.textContent = shown + " of " + total + " cards shown"; }
  }
  if (cardFilter) {
    cardFilter.hidden = false;
    choices.forEach(function (choice) {
      choice.addEventListener("click", function () { showCards(choice.getAttribute("data-show")); });
    });
    showCards("");
  }

  // A card the filter hides is shown again when something links to it.
  function revealCard(id) {
    var card = id && document.getElementById(id);
    if (card && card.hidden && card.hasAttribute("data-findings")) {
      showCards("");
      card.scrollIntoView();
    }
    return card;
  }
  window.addEventListener("hashchange", function () { revealCard(location.hash.slice(1)); });  // cards are f<N>: no escapes

  var goto = document.getElementById("goto-filter");
  function cardRuns() {
    // data-card-pages: "first-last:page.html ..." for each run of consecutive card numbers on
    // each page of the layer's cards
    return ((goto && goto.getAttribute("data-card-pages")) || "").split(" ").map(function (token) {
      var match = /^([0-9]+)-([0-9]+):(.+)$/.exec(token);
      return match && { first: Number(match[1]), last: Number(match[2]), page: match[3] };
    }).filter(Boolean);
  }
  function cardPageOf(number) {
    var runs = cardRuns();
    for (var i = 0; i < runs.length; i++) {
      if (number >= runs[i].first && number <= runs[i].last) { return runs[i].page; }
    }
    return null;
  }
  function shellWord(text) {  // a layer name as it would be typed after --layers
    return /^[A-Za-z0-9_.\/:+-]+$/.test(text) ? text : "'" + text.replace(/'/g, "'\\''") + "'";
  }
  function noCardWords(text) {
    // why a number has no card, and how to get one: every filter number lands on a card or here;
    // the options as <code> on one line each ("--max-filters" must not break at its dashes)
    var filters = Number(goto.getAttribute("data-filters"));
    var drawn = Number(goto.getAttribute("data-drawn"));
    var layer = goto.getAttribute("data-layer") || "";
    if (!/^[0-9]+$/.test(text) || Number(text) >= filters) {
      return [layer + " has " + filters + " filters: give a number from 0 to " + (filters - 1) + "."];
    }
    var flagged = cardRuns().some(function (run) { return run.last >= drawn; });
    return ["Filter " + Number(text) + " has no card: the report draws filters 0–" + (drawn - 1) + " (",
            { code: "--max-filters " + drawn }, ")" + (flagged ? " and the filters a health finding names" : "") +
            ". Rebuild with ", { code: "--max-filters all" }, ", or with ", { code: "--layers" }, " ",
            { code: shellWord(layer), name: true }, " ", { code: "--max-filters all" }, " for this layer's alone."];
  }
  function say(message, parts) {  // text nodes and <code> elements: no markup is parsed
    message.textContent = "";
    parts.forEach(function (part) {
      if (typeof part === "string") {
        message.appendChild(document.createTextNode(part));
      } else {
        var code = document.createElement("code");
        code.textContent = part.code;
        if (part.name) { code.className = "name"; }  // a long name may wrap anywhere; an option never
        message.appendChild(code);
      }
    });
  }
  var gotoNumber = document.getElementById("goto-number");
  if (goto) {
    goto.hidden = false;
    goto.addEventListener("submit", function (event) {
      event.preventDefault();  // nothing is sent anywhere (the CSP's form-action is 'none')
      var message = document.getElementById("goto-message");
      var text = gotoNumber.value.trim();
      var card = /^[0-9]+$/.test(text) && document.getElementById("f" + Number(text));
      if (!card) {
        var elsewhere = /^[0-9]+$/.test(text) && cardPageOf(Number(text));
        if (elsewhere) {  // the card is on another page of the layer's cards
          location.href = elsewhere + "#f" + Number(text);
          return;
        }
        say(message, noCardWords(text));
        return;
      }
      message.textContent = "";
      revealCard(card.id);
      if (location.hash === "#" + card.id) {
        card.scrollIntoView();
      } else {
        location.hash = card.id;
      }
    });
  }

  // The "?" panel: the keys that work on this page (the button shows only where script runs).
  var help = document.getElementById("keys-help");
  function toggleHelp() {
    if (help.open) { help.close(); } else { help.showModal(); }
  }
  if (help && typeof help.showModal === "function") {
    var helpButton = document.getElementById("keys-button");
    helpButton.hidden = false;
    helpButton.addEventListener("click", toggleHelp);
    document.getElementById("keys-close").addEventListener("click", function () { help.close(); });
    help.addEventListener("click", function (event) {
      if (event.target === help) { help.close(); }  // a click on the backdrop
    });
  } else {
    help = null;
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.defaultPrevented) { return; }
    var target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) { return; }
    if (help && (event.key === "?" || help.open)) {  // while the panel is open, only ? and Esc act
      if (event.key === "?") {
        event.preventDefault();
        toggleHelp();
      }
      return;
    }
    if (event.key === "/" && search) {
      event.preventDefault();
      document.getElementById("layer-filter").focus();
      return;
    }
    if (event.key === "g" && gotoNumber) {
      event.preventDefault();
      gotoNumber.focus();
      gotoNumber.select();
      return;
    }
    var rel = { ArrowLeft: "prev", k: "prev", ArrowRight: "next", j: "next" }[event.key];
    var link = rel && document.querySelector('a[rel="' + rel + '"]');
    if (link) { window.location.href = link.href; }
  });
}());
