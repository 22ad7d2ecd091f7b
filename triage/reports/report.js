// report.html's queue: per-tier tables with sort, filters, search and paging, all in the page.
// Reads the JSON data block (rows) and the labels block (text in the report's language); it
// loads nothing and creates no element that could load anything (no img, no links out).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("queue-data").textContent);
  var L = JSON.parse(document.getElementById("labels").textContent);
  var C = {};
  data.columns.forEach(function (name, i) { C[name] = i; });
  var PAGE = 200;
  var rows = data.rows;
  var dirs = data.dirs;
  var state = { tier: "", category: "", bank: "", reason: "", path: "", search: "",
                sort: "rank", desc: false, page: {} };

  function pathOf(r) { return dirs[r[C.dir]] + r[C.name]; }
  function text(s) { return document.createTextNode(s == null ? "" : String(s)); }
  function el(tag, cls, content) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (content != null) { e.appendChild(typeof content === "object" ? content : text(content)); }
    return e;
  }
  function banksOf(r) {
    return r[C.reasons].map(function (x) { return x.bank; }).filter(function (b) { return b; });
  }
  function kindsOf(r) { return r[C.reasons].map(function (x) { return x.kind; }); }
  function catOf(r) { return r[C.category] || r[C.suggested] || ""; }
  function shownCat(c) { return L.categories[c] || c; }

  // Search text per row, built once: path, digests, category, cluster and every reason field.
  var hay = rows.map(function (r) {
    var parts = [pathOf(r), r[C.md5], r[C.sha1], catOf(r), shownCat(catOf(r)), r[C.cluster],
                 r[C.decision]];
    r[C.reasons].forEach(function (x) {
      Object.keys(x).forEach(function (k) { parts.push(x[k]); });
    });
    return parts.join(" ").toLowerCase();
  });
  var lowerPaths = rows.map(function (r) { return pathOf(r).toLowerCase(); });

  function keep(i) {
    var r = rows[i];
    if (state.tier && String(r[C.tier]) !== state.tier) { return false; }
    if (state.category && catOf(r) !== state.category) { return false; }
    if (state.bank && banksOf(r).indexOf(state.bank) < 0) { return false; }
    if (state.reason && kindsOf(r).indexOf(state.reason) < 0) { return false; }
    if (state.path && lowerPaths[i].indexOf(state.path) < 0) { return false; }
    if (state.search && hay[i].indexOf(state.search) < 0) { return false; }
    return true;
  }

  function sortKey(i) {
    var r = rows[i];
    switch (state.sort) {
      case "path": return lowerPaths[i];
      case "category": return catOf(r).toLowerCase();
      case "severity": return r[C.severity] == null ? -1 : r[C.severity];
      case "score": return r[C.score];
      case "cluster": return r[C.cluster] || "";
      default: return r[C.rank];
    }
  }

  function ordered() {
    var idx = [];
    for (var i = 0; i < rows.length; i++) { if (keep(i)) { idx.push(i); } }
    var keys = {};
    idx.forEach(function (i) { keys[i] = sortKey(i); });
    var sign = state.desc ? -1 : 1;
    idx.sort(function (a, b) {
      var ka = keys[a], kb = keys[b];
      if (ka < kb) { return -sign; }
      if (ka > kb) { return sign; }
      return rows[a][C.rank] - rows[b][C.rank];
    });
    return idx;
  }

  function pathCell(p) {
    // Break only after separators, never inside a name.
    var td = el("td", "path");
    p.split(/(?<=[\/\\!])/).forEach(function (part, k) {
      if (k) { td.appendChild(document.createElement("wbr")); }
      td.appendChild(text(part));
    });
    return td;
  }

  function reasonText(x) {
    var head = x.kind + " " + x.algo + (x.bank ? " " + x.bank + ":" + x.entry : "") +
      " " + L.distance + " " + x.distance;
    var extra = Object.keys(x).filter(function (k) {
      return ["kind", "algo", "bank", "entry", "distance", "category"].indexOf(k) < 0;
    }).map(function (k) { return k + "=" + x[k]; });
    return head + (x.category ? " [" + x.category + "]" : "") +
      (extra.length ? " (" + extra.join(", ") + ")" : "");
  }

  function categoryCell(r) {
    var td = el("td", "cat");
    if (r[C.category]) {
      td.appendChild(text(shownCat(r[C.category])));
      td.appendChild(el("span", "src", " (" + (L.source[r[C.category_source]] || "") + ")"));
    } else if (r[C.suggested]) {
      td.appendChild(el("em", "suggested", L.suggested + ": " + shownCat(r[C.suggested])));
    }
    if (r[C.decision]) { td.appendChild(el("div", "decision", L.decision[r[C.decision]])); }
    return td;
  }

  function rowElement(r) {
    var tr = el("tr");
    tr.id = "row-" + r[C.rank];
    tr.appendChild(el("td", "n", r[C.rank]));
    tr.appendChild(el("td", "n", r[C.severity] == null ? "" : r[C.severity]));
    tr.appendChild(el("td", "n", r[C.score]));
    tr.appendChild(pathCell(pathOf(r)));
    tr.appendChild(categoryCell(r));
    var cl = el("td", "cluster");
    if (r[C.cluster]) {
      var b = el("button", "linkish", r[C.cluster]);
      b.type = "button";
      b.setAttribute("data-cluster", r[C.cluster]);
      cl.appendChild(b);
    }
    tr.appendChild(cl);
    var rs = el("td", "reasons");
    r[C.reasons].forEach(function (x) { rs.appendChild(el("div", null, reasonText(x))); });
    tr.appendChild(rs);
    var hs = el("td", "hash");
    hs.appendChild(el("code", null, r[C.md5] || ""));
    tr.appendChild(hs);
    return tr;
  }

  function render() {
    var idx = ordered();
    var byTier = {};
    idx.forEach(function (i) {
      var t = rows[i][C.tier];
      (byTier[t] = byTier[t] || []).push(i);
    });
    document.getElementById("filtered-total").textContent = String(idx.length);
    Array.prototype.forEach.call(document.querySelectorAll("section.tier"), function (sec) {
      var t = sec.getAttribute("data-tier");
      var mine = byTier[t] || [];
      var page = Math.min(state.page[t] || 0, Math.max(0, Math.ceil(mine.length / PAGE) - 1));
      state.page[t] = page;
      var body = sec.querySelector("tbody");
      var frag = document.createDocumentFragment();
      mine.slice(page * PAGE, (page + 1) * PAGE).forEach(function (i) {
        frag.appendChild(rowElement(rows[i]));
      });
      body.replaceChildren(frag);
      sec.querySelector(".shown").textContent = String(mine.length);
      var from = mine.length ? page * PAGE + 1 : 0;
      sec.querySelector(".range").textContent =
        from + "-" + Math.min((page + 1) * PAGE, mine.length);
      sec.querySelector("button.prev").disabled = page === 0;
      sec.querySelector("button.next").disabled = (page + 1) * PAGE >= mine.length;
    });
    Array.prototype.forEach.call(document.querySelectorAll("th button.sort"), function (b) {
      var on = b.getAttribute("data-sort") === state.sort;
      b.setAttribute("aria-sort", on ? (state.desc ? "descending" : "ascending") : "none");
      b.textContent = b.getAttribute("data-label") + (on ? (state.desc ? " \u25bc" : " \u25b2") : "");
    });
  }

  function fill(id, values, show) {
    var sel = document.getElementById(id);
    values.sort().forEach(function (v) {
      var o = document.createElement("option");
      o.value = v;
      o.textContent = show ? show(v) : v;
      sel.appendChild(o);
    });
  }
  function distinct(f) {
    var seen = {};
    rows.forEach(function (r) { f(r).forEach(function (v) { if (v) { seen[v] = 1; } }); });
    return Object.keys(seen);
  }
  fill("f-category", distinct(function (r) { return [catOf(r)]; }), shownCat);
  fill("f-bank", distinct(banksOf));
  fill("f-reason", distinct(kindsOf));

  var timer = null;
  function later() { clearTimeout(timer); timer = setTimeout(render, 120); }
  function bind(id, key, lower, delayed) {
    var e = document.getElementById(id);
    e.addEventListener(delayed ? "input" : "change", function () {
      state[key] = lower ? e.value.trim().toLowerCase() : e.value;
      state.page = {};
      if (delayed) { later(); } else { render(); }
    });
  }
  bind("f-tier", "tier", false, false);
  bind("f-category", "category", false, false);
  bind("f-bank", "bank", false, false);
  bind("f-reason", "reason", false, false);
  bind("f-path", "path", true, true);
  bind("f-search", "search", true, true);
  document.addEventListener("click", function (ev) {
    var t = ev.target;
    if (!(t instanceof HTMLElement)) { return; }
    if (t.matches("th button.sort")) {
      var key = t.getAttribute("data-sort");
      state.desc = state.sort === key ? !state.desc : (key === "severity" || key === "score");
      state.sort = key;
      render();
    } else if (t.matches("button.prev, button.next")) {
      var tier = t.closest("section.tier").getAttribute("data-tier");
      state.page[tier] = (state.page[tier] || 0) + (t.matches(".next") ? 1 : -1);
      render();
    } else if (t.hasAttribute("data-cluster")) {
      var s = document.getElementById("f-search");
      s.value = t.getAttribute("data-cluster");
      state.search = s.value.toLowerCase();
      state.page = {};
      render();
      document.getElementById("queue").scrollIntoView();
    }
  });
  document.getElementById("f-reset").addEventListener("click", function () {
    ["f-tier", "f-category", "f-bank", "f-reason", "f-path", "f-search"].forEach(function (id) {
      document.getElementById(id).value = "";
    });
    state.tier = state.category = state.bank = state.reason = state.path = state.search = "";
    state.sort = "rank";
    state.desc = false;
    state.page = {};
    render();
  });
  render();
  document.body.setAttribute("data-ready", "1");
})();
