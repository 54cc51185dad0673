/* The script on every page (pages with live widgets also load live.js): copy buttons on code, the search over the
   whole course, and closing the course menu.
   Nothing is fetched from outside the site: the search index is _static/search-index.js, made by docs/build.py and
   loaded (as a script, which works from disk too) the first time the search box is used. Without this script every
   page still reads and every link works. */
(function () {
  "use strict";
  const script = document.currentScript;
  const root = (script && script.dataset.root) || "";

  /* ---- copy buttons ---- */
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(() => fallbackCopy(text));
    }
    return Promise.resolve(fallbackCopy(text));
  }
  function fallbackCopy(text) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } finally { area.remove(); }
  }
  function addCopyButtons() {
    const targets = document.querySelectorAll(
      "main .jp-CodeCell .jp-InputArea-editor, main .jp-RenderedMarkdown pre, main .landing pre, .module-source .highlight");
    targets.forEach((target) => {
      const holder = target.closest(".jp-InputArea") || target.parentElement;
      if (!holder || holder.querySelector(":scope > .copy-button")) return;
      holder.classList.add("copyable");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "copy-button";
      button.textContent = "Copy";
      button.setAttribute("aria-label", "Copy this code");
      button.addEventListener("click", () => {
        const pre = target.matches("pre") ? target : target.querySelector("pre");
        const clone = (pre || target).cloneNode(true);
        clone.querySelectorAll(".linenos").forEach((e) => e.remove());
        const text = clone.textContent.replace(/\n$/, "");
        copyText(text).then(() => {
          button.textContent = "Copied";
          button.classList.add("copied");
          button.dataset.copied = text;
          setTimeout(() => { button.textContent = "Copy"; button.classList.remove("copied"); }, 1500);
        });
      });
      holder.appendChild(button);
    });
  }

  /* ---- search ---- */
  let index = null;
  function loadIndex() {
    if (index) return Promise.resolve(index);
    if (window.FASHIONDIFF_SEARCH_INDEX) return Promise.resolve((index = prepare(window.FASHIONDIFF_SEARCH_INDEX)));
    return new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = root + "_static/search-index.js";
      s.onload = () => resolve((index = prepare(window.FASHIONDIFF_SEARCH_INDEX || [])));
      s.onerror = reject;
      document.head.appendChild(s);
    });
  }
  const fold = (s) => s.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  function prepare(entries) {
    return entries.map((e) => ({ ...e, title: fold(e.s), page: fold(e.p), body: fold(e.t) }));
  }
  function terms(query) {
    return fold(query).split(/[^\p{L}\p{N}_]+/u).filter((t) => t.length > 0);
  }
  function count(haystack, term) {
    const re = new RegExp("(?:^|[^\\p{L}\\p{N}_])" + term.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "gu");
    let n = 0;
    while (re.exec(haystack) && n < 50) n += 1;
    return n;
  }
  function search(query) {
    const words = terms(query);
    if (!words.length) return [];
    const hits = [];
    for (const e of index) {
      let score = 0;
      let all = true;
      for (const w of words) {
        const inTitle = count(e.title, w);
        const inBody = count(e.body, w);
        const inPage = count(e.page, w);
        if (!inTitle && !inBody && !inPage) { all = false; break; }
        score += 10 * inTitle + 3 * inPage + Math.min(inBody, 20);
      }
      if (all) hits.push({ e, score });
    }
    hits.sort((a, b) => b.score - a.score);
    return hits.slice(0, 20).map((h) => h.e);
  }
  function escapeHtml(s) {
    return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  function snippet(entry, words) {
    const body = entry.t;
    const folded = entry.body;
    let at = -1;
    for (const w of words) { at = folded.indexOf(w); if (at >= 0) break; }
    const start = Math.max(0, at - 60);
    let text = (start > 0 ? "…" : "") + body.slice(start, start + 180) + (body.length > start + 180 ? "…" : "");
    text = escapeHtml(text);
    for (const w of words) {
      if (w.length < 2) continue;
      text = text.replace(new RegExp("(" + escapeHtml(w).replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + ")", "giu"), "<mark>$1</mark>");
    }
    return text;
  }
  function setUpSearch() {
    const input = document.getElementById("search-input");
    const box = document.getElementById("search-results");
    if (!input || !box) return;
    input.disabled = false;
    input.title = "Search every notebook and module of the course";
    let timer = null;
    const show = () => {
      const query = input.value.trim();
      if (!query) { box.hidden = true; box.innerHTML = ""; return; }
      loadIndex().then(() => {
        const found = search(query);
        const words = terms(query);
        if (!found.length) {
          box.innerHTML = '<p class="none">Nothing found for “' + escapeHtml(query) + '”.</p>';
        } else {
          box.innerHTML = '<ol>' + found.map((e) =>
            '<li><a href="' + root + escapeHtml(e.u) + '"><span class="where">' + escapeHtml(e.p) + '</span>' +
            '<span class="title">' + escapeHtml(e.s) + '</span><span class="snippet">' + snippet(e, words) +
            '</span></a></li>').join("") + '</ol>';
        }
        box.hidden = false;
      });
    };
    input.addEventListener("focus", () => { loadIndex(); if (input.value.trim()) show(); });
    input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(show, 80); });
    input.addEventListener("keydown", (ev) => {
      const links = [...box.querySelectorAll("a")];
      if (ev.key === "Enter" && links.length) { ev.preventDefault(); links[0].click(); }
      else if (ev.key === "ArrowDown" && links.length) { ev.preventDefault(); links[0].focus(); }
      else if (ev.key === "Escape") { box.hidden = true; }
    });
    box.addEventListener("keydown", (ev) => {
      const links = [...box.querySelectorAll("a")];
      const i = links.indexOf(document.activeElement);
      if (ev.key === "ArrowDown" && i < links.length - 1) { ev.preventDefault(); links[i + 1].focus(); }
      else if (ev.key === "ArrowUp") { ev.preventDefault(); (i > 0 ? links[i - 1] : input).focus(); }
      else if (ev.key === "Escape") { box.hidden = true; input.focus(); }
    });
    document.addEventListener("click", (ev) => {
      if (!ev.target.closest(".search")) box.hidden = true;
    });
  }

  /* ---- the course menu and the inline contents close when one of their links is used, or on a click outside ---- */
  function setUpMenus() {
    const menu = document.querySelector(".course-menu");
    document.addEventListener("click", (ev) => {
      if (menu && menu.open && !ev.target.closest(".course-menu")) menu.open = false;
    });
    document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && menu) menu.open = false; });
    document.querySelectorAll(".toc-inline a").forEach((a) =>
      a.addEventListener("click", () => { a.closest("details").open = false; }));
  }

  function start() { addCopyButtons(); setUpSearch(); setUpMenus(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
