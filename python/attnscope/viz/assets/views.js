/* attnscope views: plain JS, no dependencies. Every piece of data text goes through textContent or canvas
   fillText, never innerHTML. Each root element .attnscope-view has a sibling <script type=application/json>. */
(function () {
  "use strict";

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  // A token inside a longer string (tooltips): when it holds right-to-left letters or direction controls, it goes
  // between first-strong isolate and pop directional isolate, so that its direction ends with it.
  var BIDI = /[\u0590-\u08ff\u200e\u200f\u202a-\u202e\u2066-\u2069\ufb1d-\ufdff\ufe70-\ufefe\ud802\ud803\ud83a\ud83b]/;
  function iso(t) { t = String(t); return BIDI.test(t) ? "\u2068" + t + "\u2069" : t; }
  function fmt(v) { return (Math.abs(v) >= 0.01 || v === 0) ? v.toFixed(3) : v.toExponential(2); }
  var diverging = window.attnscopeScales.diverging, sequential = window.attnscopeScales.sequential;  // scales.js
  function tooltip(root) {
    var tip = el("div", "ats-tip");
    root.appendChild(tip);
    return {
      show: function (text, ev) { tip.textContent = text; tip.style.display = "block";
        tip.style.left = (ev.clientX + 12) + "px"; tip.style.top = (ev.clientY + 12) + "px"; },
      hide: function () { tip.style.display = "none"; }
    };
  }

  // --- token attribution view -------------------------------------------------------------------------
  function renderTokens(root, data) {
    var controls = el("div", "ats-controls");
    var mode = "token";
    var body = el("div");
    var legend = el("div", "ats-legend");
    legend.appendChild(el("span", null, "-" + fmt(data.max_abs)));
    legend.appendChild(el("span", "ats-legend-bar"));
    legend.appendChild(el("span", null, "+" + fmt(data.max_abs)));
    legend.appendChild(el("span", null, " (blue: negative, red: positive)"));
    var hasWords = data.examples.some(function (e) { return !!e.word; });
    if (hasWords) {
      ["token", "word"].forEach(function (m) {
        var lab = el("label");
        var r = el("input");
        r.type = "radio"; r.name = root.id + "-mode"; r.value = m; r.checked = m === mode;
        r.addEventListener("change", function () { mode = m; draw(); });
        lab.appendChild(r); lab.appendChild(document.createTextNode(" " + m + "s"));
        controls.appendChild(lab);
      });
    }
    root.appendChild(controls); root.appendChild(legend); root.appendChild(body);
    function draw() {
      body.textContent = "";
      data.examples.forEach(function (ex) {
        var part = (mode === "word" && ex.word) ? ex.word : ex.token;
        var box = el("div", "ats-example");
        if (ex.label) box.appendChild(el("div", "ats-cell-label", ex.label));
        var line = el("div", "ats-tokens");
        var frag = document.createDocumentFragment();
        for (var i = 0; i < part.tokens.length; i++) {
          var s = el("span", "ats-token", part.tokens[i]);
          s.style.backgroundColor = diverging(part.scores[i], data.max_abs);
          if (data.max_abs > 0 && Math.abs(part.scores[i]) / data.max_abs > 0.55) s.style.color = "#fff";
          s.title = iso(part.tokens[i]) + ": " + fmt(part.scores[i]);
          s.setAttribute("data-score", String(part.scores[i]));
          frag.appendChild(s);
        }
        line.appendChild(frag);
        box.appendChild(line);
        body.appendChild(box);
      });
    }
    draw();
  }

  // --- attention head view: lines from each query token to the keys it attends ---------------------------
  var HEAD_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                     "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"];
  function renderHead(root, data) {
    var controls = el("div", "ats-controls");
    var layerSel = el("select");
    data.layers.forEach(function (name, i) { var o = el("option", null, "layer " + name); o.value = i; layerSel.appendChild(o); });
    controls.appendChild(layerSel);
    var active = data.heads.map(function (_, i) { return i === 0; });
    data.heads.forEach(function (name, i) {
      var lab = el("label");
      var c = el("input"); c.type = "checkbox"; c.checked = active[i];
      c.addEventListener("change", function () { active[i] = c.checked; draw(); });
      var sw = el("span", null, " head " + name); sw.style.color = HEAD_COLORS[i % HEAD_COLORS.length];
      lab.appendChild(c); lab.appendChild(sw); controls.appendChild(lab);
    });
    root.appendChild(controls);
    var GAP = 160;
    var n = Math.max(data.queries.length, data.keys.length);
    var ROW = Math.max(6, Math.min(18, Math.floor(30000 / Math.max(n, 1))));  // canvases stop near 32k px
    // The rows scroll inside a fixed-height box, and only the lines of queries near the visible rows are
    // drawn (redrawn on scroll), so long inputs stay fast.
    var wrap = el("div", "ats-head-view");
    var inner = el("div");
    inner.style.position = "relative";
    inner.style.height = (n * ROW + 4) + "px";
    wrap.style.height = Math.min(n * ROW + 4, 640) + "px";
    wrap.style.overflowY = "auto";
    var left = el("div", "ats-col"), right = el("div", "ats-col");
    function row(text) { var d = el("div", null, text); if (ROW !== 18) { d.style.height = d.style.lineHeight = ROW + "px"; d.style.fontSize = Math.min(13, ROW - 2) + "px"; } return d; }
    data.queries.forEach(function (t, i) { var d = row(t); d.setAttribute("data-q", i); left.appendChild(d); });
    data.keys.forEach(function (t) { right.appendChild(row(t)); });
    inner.appendChild(left);
    wrap.appendChild(inner);
    root.appendChild(wrap);
    var leftWidth = Math.max(60, left.getBoundingClientRect().width);
    var canvas = el("canvas");
    // A viewport-sized canvas that follows the scroll position: a canvas as tall as 1,000 rows is slow to draw.
    var viewH = Math.min(n * ROW + 4, 640);
    canvas.width = GAP; canvas.height = viewH;
    canvas.style.position = "absolute"; canvas.style.left = leftWidth + "px"; canvas.style.top = "0";
    right.style.left = (leftWidth + GAP) + "px";
    inner.appendChild(canvas); inner.appendChild(right);
    var pending = false;
    wrap.addEventListener("scroll", function () {
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () { pending = false; draw(); });
    });
    var ctx = canvas.getContext("2d");
    var focus = -1;
    left.addEventListener("mouseover", function (ev) {
      var q = ev.target.getAttribute && ev.target.getAttribute("data-q");
      if (q !== null && q !== undefined) { focus = +q; draw(); }
    });
    left.addEventListener("mouseleave", function () { focus = -1; draw(); });
    layerSel.addEventListener("change", draw);
    function draw() {
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.lineWidth = 2;
      var layer = +layerSel.value;
      var top = wrap.scrollTop;
      canvas.style.top = top + "px";
      var first = Math.max(0, Math.floor(wrap.scrollTop / ROW) - 40);
      var last = Math.ceil((wrap.scrollTop + wrap.clientHeight) / ROW) + 40;
      // Lines are stroked one by one (a single path of thousands of crossing segments is far slower to fill).
      for (var h = 0; h < data.heads.length; h++) {
        if (!active[h]) continue;
        ctx.strokeStyle = HEAD_COLORS[h % HEAD_COLORS.length];
        var rows = data.rows[layer][h];
        for (var q = first; q < Math.min(rows.length, last); q++) {
          if (focus >= 0 && q !== focus) continue;
          var r = rows[q];
          for (var e = 0; e < r.length; e += 2) {
            ctx.globalAlpha = Math.min(1, r[e + 1]);
            ctx.beginPath();
            ctx.moveTo(0, q * ROW + ROW / 2 - top);
            ctx.lineTo(GAP, r[e] * ROW + ROW / 2 - top);
            ctx.stroke();
          }
        }
      }
      ctx.globalAlpha = 1;
      Array.prototype.forEach.call(left.children, function (d, i) { d.className = i === focus ? "ats-active" : ""; });
    }
    draw();
  }

  // --- heatmaps on canvas: the model view grid and the generic matrix view ------------------------------
  function heatmap(values, nr, nc, cell, colour, maxV) {
    var c = el("canvas");
    c.width = nc * cell; c.height = nr * cell;
    var ctx = c.getContext("2d");
    for (var i = 0; i < nr; i++) for (var j = 0; j < nc; j++) {
      ctx.fillStyle = colour(values[i * nc + j], maxV);
      ctx.fillRect(j * cell, i * cell, cell, cell);
    }
    return c;
  }
  function hoverCells(canvas, cell, nr, nc, describe, tip) {
    canvas.addEventListener("mousemove", function (ev) {
      var rect = canvas.getBoundingClientRect();
      var j = Math.floor((ev.clientX - rect.left) / (rect.width / nc));
      var i = Math.floor((ev.clientY - rect.top) / (rect.height / nr));
      if (i >= 0 && i < nr && j >= 0 && j < nc) tip.show(describe(i, j), ev); else tip.hide();
    });
    canvas.addEventListener("mouseleave", tip.hide);
  }
  function renderModel(root, data) {
    var tip = tooltip(root);
    var grid = el("div", "ats-grid");
    grid.style.gridTemplateColumns = "auto repeat(" + data.heads.length + ", auto)";
    var big = el("div", "ats-enlarged");
    grid.appendChild(el("span"));
    data.heads.forEach(function (h) { grid.appendChild(el("span", "ats-cell-label", "head " + h)); });
    var n = data.n, scale = data.scale || 1;
    // Cross attention: other tokens on the rows (data.nr x data.nc, data.row_labels); otherwise n x n.
    var nr = data.nr || n, nc = data.nc || n, rowLabels = data.row_labels || data.labels;
    if (data.scale_note) root.appendChild(el("div", "ats-legend ats-scale-note", data.scale_note));
    data.layers.forEach(function (layer, li) {
      grid.appendChild(el("span", "ats-cell-label", "layer " + layer));
      data.heads.forEach(function (head, hi) {
        var vals = data.cells[li][hi];
        var c = heatmap(vals, nr, nc, Math.max(1, Math.floor(64 / n)), sequential, scale);
        c.style.width = "64px"; c.style.height = "64px";
        c.title = "layer " + layer + ", head " + head;
        c.addEventListener("click", function () { enlarge(li, hi); });
        grid.appendChild(c);
      });
    });
    root.appendChild(grid); root.appendChild(big);
    function enlarge(li, hi) {
      big.textContent = "";
      big.appendChild(el("div", "ats-title", "layer " + data.layers[li] + ", head " + data.heads[hi]));
      var cell = Math.max(4, Math.floor(480 / n));
      var c = heatmap(data.cells[li][hi], nr, nc, cell, sequential, scale);
      hoverCells(c, cell, nr, nc, function (i, j) {
        return iso(rowLabels[i]) + " \u2192 " + iso(data.labels[j]) + ": " + fmt(data.cells[li][hi][i * nc + j]);
      }, tip);
      big.appendChild(c);
    }
  }
  function renderMatrix(root, data) {
    var tip = tooltip(root);
    var nr = data.rows.length, nc = data.cols.length;
    var maxV = data.max_abs;
    var colour = data.diverging ? diverging : sequential;
    var cell = Math.max(3, Math.min(48, Math.floor(900 / Math.max(nc, 1))));
    // Rows keep a readable height when there are few of them and many columns (a long prompt, a few generated
    // tokens): every row label is drawn at 11px instead of being thinned away with the narrow columns.
    var cellH = Math.max(cell, Math.min(16, Math.floor(900 / Math.max(nr, 1))));
    // Labels are drawn on the canvas (fillText: text, never markup); long label lists are thinned to fit.
    var probe = el("canvas").getContext("2d");
    probe.font = "11px sans-serif";
    var left = 8 + Math.min(160, Math.max.apply(null, data.rows.map(function (r) { return probe.measureText(r).width; }).concat([10])));
    var top = 8 + Math.min(120, Math.max.apply(null, data.cols.map(function (c) { return probe.measureText(c).width; }).concat([10])) * 0.75);
    var c = el("canvas");
    c.width = left + nc * cell; c.height = top + nr * cellH;
    var strip = el("div", "ats-sections");
    strip.style.width = c.width + "px";
    var ctx = c.getContext("2d");
    for (var i = 0; i < nr; i++) for (var j = 0; j < nc; j++) {
      ctx.fillStyle = colour(data.values[i * nc + j], maxV);
      ctx.fillRect(left + j * cell, top + i * cellH, cell, cellH);
    }
    ctx.fillStyle = "#333"; ctx.font = "11px sans-serif"; ctx.textBaseline = "middle";
    var rowStep = Math.max(1, Math.ceil(12 / cellH)), colStep = Math.max(1, Math.ceil(12 / cell));
    for (var r = 0; r < nr; r += rowStep) { ctx.textAlign = "right"; ctx.fillText(data.rows[r], left - 4, top + r * cellH + cellH / 2, left - 6); }
    for (var k = 0; k < nc; k += colStep) {
      ctx.save(); ctx.translate(left + k * cell + cell / 2, top - 4); ctx.rotate(-Math.PI / 4);
      ctx.textAlign = "left"; ctx.fillText(data.cols[k], 0, 0, 150); ctx.restore();
    }
    // Column sections (generation: prompt | generated): a dark rule at each boundary, the names in a strip above.
    var sections = data.sections || [];
    sections.forEach(function (sec, si) {
      var x0 = left + sec[0] * cell, x1 = left + (si + 1 < sections.length ? sections[si + 1][0] : nc) * cell;
      if (sec[0] > 0) { ctx.fillStyle = "#222"; ctx.fillRect(x0 - 1, top, 2, nr * cellH); }
      var name = el("span", "ats-section-name", sec[1]);
      name.style.left = x0 + "px"; name.style.width = Math.max(0, x1 - x0) + "px";
      name.setAttribute("data-section", sec[1]);
      strip.appendChild(name);
    });
    c.setAttribute("data-font-px", "11"); c.setAttribute("data-cell-px", String(cell));
    c.setAttribute("data-row-px", String(cellH)); c.setAttribute("data-label-step", String(colStep));
    c.setAttribute("data-row-label-step", String(rowStep));
    c.addEventListener("mousemove", function (ev) {
      var rect = c.getBoundingClientRect();
      var jj = Math.floor((ev.clientX - rect.left - left) / cell), ii = Math.floor((ev.clientY - rect.top - top) / cellH);
      if (ii >= 0 && ii < nr && jj >= 0 && jj < nc) {
        tip.show(data.row_title + " " + iso(data.rows[ii]) + "\n" + data.col_title + " " + iso(data.cols[jj]) + "\n" + fmt(data.values[ii * nc + jj]), ev);
      } else tip.hide();
    });
    c.addEventListener("mouseleave", tip.hide);
    var box = el("div", "ats-matrix");
    if (sections.length) box.appendChild(strip);
    box.appendChild(c);
    var legend = el("div", "ats-legend");
    legend.appendChild(el("span", null, (data.diverging ? "-" : "0 \u2026 ") + fmt(maxV)));
    if (data.diverging) { legend.appendChild(el("span", "ats-legend-bar")); legend.appendChild(el("span", null, "+" + fmt(maxV))); }
    legend.appendChild(el("span", null, " rows: " + data.row_title + ", columns: " + data.col_title));
    root.appendChild(legend);
    root.appendChild(box);
  }

  // --- tables (token neighbours) ------------------------------------------------------------------------
  function renderTable(root, data) {
    data.tables.forEach(function (t) {
      var box = el("div", "ats-table-box");
      if (t.title) box.appendChild(el("div", "ats-table-title", t.title));
      var table = el("table", "ats-table"), head = el("tr");
      t.columns.forEach(function (c) { head.appendChild(el("th", null, c)); });
      table.appendChild(head);
      t.rows.forEach(function (row) {
        var tr = el("tr");
        row.forEach(function (cell) { tr.appendChild(el("td", null, cell)); });
        table.appendChild(tr);
      });
      box.appendChild(table);
      root.appendChild(box);
    });
  }

  // --- labelled 2-D scatter plot (embedding projections) -------------------------------------------------
  function renderScatter(root, data) {
    var tip = tooltip(root), W = 760, H = 540, pad = 48;
    var xs = data.points.map(function (p) { return p[0]; }), ys = data.points.map(function (p) { return p[1]; });
    var x0 = Math.min.apply(null, xs.concat([0])), x1 = Math.max.apply(null, xs.concat([0]));
    var y0 = Math.min.apply(null, ys.concat([0])), y1 = Math.max.apply(null, ys.concat([0]));
    var sx = function (x) { return pad + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * (W - 2 * pad); };
    var sy = function (y) { return H - pad - (y1 > y0 ? (y - y0) / (y1 - y0) : 0.5) * (H - 2 * pad); };
    var c = el("canvas");
    c.width = W; c.height = H;
    var ctx = c.getContext("2d");
    ctx.strokeStyle = "#bbb"; ctx.beginPath();
    ctx.moveTo(pad, sy(0)); ctx.lineTo(W - pad, sy(0)); ctx.moveTo(sx(0), pad); ctx.lineTo(sx(0), H - pad); ctx.stroke();
    ctx.font = "11px sans-serif"; ctx.textBaseline = "bottom";
    data.points.forEach(function (p, i) {
      ctx.fillStyle = "#4a78c2"; ctx.beginPath(); ctx.arc(sx(p[0]), sy(p[1]), 3.5, 0, 2 * Math.PI); ctx.fill();
      ctx.fillStyle = "#222"; ctx.fillText(data.labels[i], sx(p[0]) + 4, sy(p[1]) - 2, 140);
    });
    ctx.fillStyle = "#555"; ctx.textAlign = "center"; ctx.fillText(data.x_title, W / 2, H - 6);
    ctx.save(); ctx.translate(14, H / 2); ctx.rotate(-Math.PI / 2); ctx.fillText(data.y_title, 0, 0); ctx.restore();
    c.addEventListener("mousemove", function (ev) {
      var rect = c.getBoundingClientRect(), mx = ev.clientX - rect.left, my = ev.clientY - rect.top, best = -1, bd = 64;
      data.points.forEach(function (p, i) {
        var d = Math.pow(sx(p[0]) - mx, 2) + Math.pow(sy(p[1]) - my, 2);
        if (d < bd) { bd = d; best = i; }
      });
      if (best >= 0) tip.show(iso(data.labels[best]) + "\n" + fmt(data.points[best][0]) + ", " + fmt(data.points[best][1]), ev);
      else tip.hide();
    });
    c.addEventListener("mouseleave", tip.hide);
    var box = el("div", "ats-scatter");
    box.appendChild(c);
    root.appendChild(box);
  }

  // --- logit lens grid and direct logit attribution -------------------------------------------------------
  function renderLens(root, data) {
    var tip = tooltip(root);
    var nl = data.layers.length, np = data.positions.length;
    var selected = np - 1;
    var table = el("table", "ats-lens");
    var head = el("tr");
    head.appendChild(el("th", null, "layer"));
    data.positions.forEach(function (t, j) {
      var th = el("th", "ats-lens-pos", t);
      th.setAttribute("data-pos", j);
      th.addEventListener("click", function () { select(j); });
      head.appendChild(th);
    });
    for (var li = nl - 1; li >= 0; li--) {
      var tr = el("tr");
      tr.appendChild(el("th", null, data.layers[li]));
      for (var j = 0; j < np; j++) {
        var c = data.cells[li][j];
        var td = el("td", "ats-lens-cell", c.top[0][0]);
        td.style.background = sequential(c.top[0][1], 1);
        if (c.top[0][1] > 0.6) td.style.color = "#fff";
        td.setAttribute("data-layer", li); td.setAttribute("data-pos", j);
        (function (li, j, c) {
          td.addEventListener("mousemove", function (ev) { tip.show(describe(li, j, c), ev); });
          td.addEventListener("click", function () { select(j); });
        })(li, j, c);
        td.addEventListener("mouseleave", tip.hide);
        tr.appendChild(td);
      }
      table.appendChild(tr);
    }
    table.insertBefore(head, table.firstChild);
    function describe(li, j, c) {
      var lines = ["layer " + data.layers[li] + ", position " + j + " (" + data.positions[j] + ")"];
      c.top.forEach(function (tp, r) { lines.push((r + 1) + ". " + iso(tp[0]) + "  " + fmt(tp[1])); });
      lines.push("entropy " + fmt(c.entropy) + " nats, KL to final " + fmt(c.kl));
      data.targets.forEach(function (t, k) { lines.push("target " + iso(t) + ": p " + fmt(c.target[k]) + ", rank " + c.rank[k]); });
      return lines.join("\n");
    }
    var box = el("div", "ats-matrix"); box.appendChild(table);
    root.appendChild(box);
    var chartTitle = el("div", "ats-title");
    var chart = el("canvas", "ats-lens-chart");
    chart.width = 420; chart.height = 180;
    root.appendChild(chartTitle); root.appendChild(chart);
    var COLOURS = ["rgb(220,40,40)", "rgb(40,90,230)"];
    function select(j) {
      selected = j;
      Array.prototype.forEach.call(table.querySelectorAll(".ats-lens-pos"), function (th) {
        th.className = "ats-lens-pos" + (Number(th.getAttribute("data-pos")) === j ? " ats-active" : "");
      });
      chartTitle.textContent = data.targets.length ? "target probability by layer at position " + j + " (" +
        data.positions[j] + ")" : "top-1 probability by layer at position " + j;
      var ctx = chart.getContext("2d");
      ctx.clearRect(0, 0, chart.width, chart.height);
      var L = 40, R = 12, T = 10, B = 28, w = chart.width - L - R, h = chart.height - T - B;
      ctx.strokeStyle = "#999"; ctx.strokeRect(L, T, w, h);
      ctx.fillStyle = "#333"; ctx.font = "11px sans-serif"; ctx.textAlign = "right"; ctx.textBaseline = "middle";
      ctx.fillText("1", L - 4, T); ctx.fillText("0", L - 4, T + h);
      ctx.textAlign = "center"; ctx.textBaseline = "top";
      var x = function (li) { return L + (nl > 1 ? li / (nl - 1) : 0.5) * w; };
      data.layers.forEach(function (name, li) { ctx.fillText(name, x(li), T + h + 4); });
      var series = data.targets.length ? data.targets.map(function (_, k) {
        return data.cells.map(function (row) { return row[j].target[k]; }); }) :
        [data.cells.map(function (row) { return row[j].top[0][1]; })];
      series.forEach(function (vals, k) {
        ctx.strokeStyle = ctx.fillStyle = COLOURS[k % 2]; ctx.beginPath();
        vals.forEach(function (v, li) { var yy = T + (1 - v) * h; if (li) ctx.lineTo(x(li), yy); else ctx.moveTo(x(li), yy); });
        ctx.stroke();
        vals.forEach(function (v, li) { ctx.beginPath(); ctx.arc(x(li), T + (1 - v) * h, 3, 0, 2 * Math.PI); ctx.fill(); });
        ctx.textAlign = "left"; ctx.textBaseline = "top";
        if (data.targets.length) ctx.fillText(data.targets[k], L + 6, T + 4 + 14 * k, w - 12);
      });
      chart.setAttribute("data-selected", j);
    }
    select(selected);
  }
  function renderDla(root, data) {
    root.appendChild(el("div", "ats-legend", "logit " + fmt(data.logit) + " = sum of contributions + delta " +
      fmt(data.delta) + " (final norm frozen); red raises the target, blue lowers it"));
    if (data.layers.length && data.heads.length) {
      var box = el("div", "ats-dla-heads");
      renderMatrix(box, { rows: data.layers.map(function (l) { return "L" + l; }), cols: data.heads, values: data.values,
                          max_abs: data.max_abs, diverging: true, row_title: "layer", col_title: "head" });
      root.appendChild(box);
    }
    var bars = el("div", "ats-bars");
    data.bars.forEach(function (b) {
      var row = el("div", "ats-bar-row");
      row.appendChild(el("span", "ats-bar-label", b[0]));
      var bar = el("span", "ats-bar");
      bar.style.width = Math.round(200 * (data.max_abs > 0 ? Math.abs(b[1]) / data.max_abs : 0)) + "px";
      bar.style.background = diverging(b[1] >= 0 ? data.max_abs : -data.max_abs, data.max_abs);
      row.appendChild(bar);
      row.appendChild(el("span", null, fmt(b[1])));
      bars.appendChild(row);
    });
    root.appendChild(bars);
  }

  var RENDER = { tokens: renderTokens, head: renderHead, model: renderModel, matrix: renderMatrix, table: renderTable,
                 scatter: renderScatter, lens: renderLens, dla: renderDla };
  var roots = document.querySelectorAll(".attnscope-view:not([data-rendered])");
  Array.prototype.forEach.call(roots, function (root) {
    root.setAttribute("data-rendered", "1");
    var data = JSON.parse(document.getElementById(root.id + "-data").textContent);
    RENDER[root.getAttribute("data-view")](root, data);
  });
})();
