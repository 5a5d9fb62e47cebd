/* attnscope corpus report: every example in the embedded JSON, one page drawn at a time (so 10,000 examples stay
   responsive); search (substring of the text, case-insensitive), sort, page. Data text goes through textContent
   only, never innerHTML. Sets data-ready on the root when the first page is drawn. */
(function () {
  "use strict";
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  var colour = window.attnscopeScales.diverging;  // scales.js, which page() puts in the head
  function setup(root, data) {
    var F = {};
    data.fields.forEach(function (f, i) { F[f] = i; });
    var rows = data.rows, lower = rows.map(function (r) { return r[F.text].toLowerCase(); });
    var order = rows.map(function (_, i) { return i; }), shown = order, pageNo = 0;
    var className = function (p) {
      return p === null ? "" : (data.class_names && data.class_names[p] !== undefined ? data.class_names[p] : String(p));
    };
    var controls = el("div", "ats-corpus-controls");
    var search = el("input"); search.type = "search"; search.placeholder = "search texts"; search.className = "ats-search";
    var sort = el("select", "ats-sort");
    [["index", "index"], ["prediction", "prediction"], ["probability", "probability (high first)"],
     ["probability_low", "probability (low first)"], ["error", "errors first"]].forEach(function (o) {
      var opt = el("option", null, o[1]); opt.value = o[0]; sort.appendChild(opt);
    });
    var prev = el("button", "ats-prev", "\u2039 prev"), next = el("button", "ats-next", "next \u203a");
    var status = el("span", "ats-status");
    [search, sort, prev, next, status].forEach(function (c) { controls.appendChild(c); });
    root.appendChild(controls);
    var table = el("table"), head = el("tr"), body = el("tbody");
    ["#", "label", "prediction", "probability", "", "tokens (attribution)"].forEach(function (h) {
      head.appendChild(el("th", null, h));
    });
    var thead = el("thead"); thead.appendChild(head); table.appendChild(thead); table.appendChild(body);
    root.appendChild(table);

    function key(i) {
      var r = rows[i], s = sort.value;
      if (s === "prediction") return [r[F.prediction] === null ? Infinity : r[F.prediction], i];
      if (s === "probability") return [r[F.probability] === null ? Infinity : -r[F.probability], i];
      if (s === "probability_low") return [r[F.probability] === null ? Infinity : r[F.probability], i];
      if (s === "error") return [r[F.correct] === false ? 0 : (r[F.correct] === true ? 1 : 2), i];
      return [i, i];
    }
    function refresh() {
      var q = search.value.toLowerCase();
      order = rows.map(function (_, i) { return i; });
      var keys = order.map(key);
      order.sort(function (a, b) { return keys[a][0] - keys[b][0] || keys[a][1] - keys[b][1]; });
      shown = q ? order.filter(function (i) { return lower[i].indexOf(q) >= 0; }) : order;
      pageNo = 0;
      draw();
    }
    function draw() {
      var size = data.page_size, pages = Math.max(1, Math.ceil(shown.length / size));
      pageNo = Math.min(Math.max(pageNo, 0), pages - 1);
      body.textContent = "";
      shown.slice(pageNo * size, pageNo * size + size).forEach(function (i) {
        var r = rows[i], tr = el("tr", r[F.correct] === false ? "ats-wrong" : (r[F.correct] === true ? "ats-right" : ""));
        tr.setAttribute("data-index", r[F.index]);
        tr.appendChild(el("td", "ats-num", String(r[F.index])));
        tr.appendChild(el("td", null, r[F.label]));
        tr.appendChild(el("td", null, className(r[F.prediction])));
        tr.appendChild(el("td", "ats-num", r[F.probability] === null ? "" : r[F.probability].toFixed(3)));
        tr.appendChild(el("td", "ats-mark", r[F.correct] === false ? "\u2717" : (r[F.correct] === true ? "\u2713" : "")));
        var cell = el("td"), scores = r[F.scores], maxAbs = 0;
        scores.forEach(function (s) { maxAbs = Math.max(maxAbs, Math.abs(s)); });
        r[F.tokens].forEach(function (t, j) {
          var span = el("span", "ats-tok", t);
          span.style.background = colour(scores[j], maxAbs);
          span.title = t + ": " + scores[j];
          cell.appendChild(span);
        });
        tr.appendChild(cell);
        body.appendChild(tr);
      });
      status.textContent = "page " + (pageNo + 1) + " / " + pages + " \u00b7 " + shown.length + " of " + rows.length +
                           " examples";
      status.setAttribute("data-matches", shown.length);
      prev.disabled = pageNo === 0; next.disabled = pageNo >= pages - 1;
    }
    search.addEventListener("input", refresh);
    sort.addEventListener("change", refresh);
    prev.addEventListener("click", function () { pageNo -= 1; draw(); });
    next.addEventListener("click", function () { pageNo += 1; draw(); });
    draw();
    root.setAttribute("data-ready", "1");
  }
  var roots = document.querySelectorAll(".ats-corpus:not([data-ready])");
  Array.prototype.forEach.call(roots, function (root) {
    var data = JSON.parse(root.nextElementSibling.textContent);
    setup(root, data);
  });
})();
