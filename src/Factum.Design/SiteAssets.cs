namespace Factum.Design;

/// <summary>
/// The generated site's stylesheet and script. Both are self-contained (no fonts, images or scripts from elsewhere), so a
/// site opened from disk with no network looks and works the same.
/// </summary>
internal static class SiteAssets
{
    /// <summary>The stylesheet: a sidebar beside a readable column, tables and code that are easy on the eye, a dark variant.</summary>
    public const string Css = """
        :root {
          --bg: #fbfbfa; --fg: #1f2328; --muted: #5d6670; --line: #d9dde1; --panel: #f1f3f5; --accent: #2457c5;
          --event: #e8f0fe; --event-fg: #1a4fb4; --command: #fdf0e0; --command-fg: #9a4b00; --query: #eaf6ea; --query-fg: #25692b;
          --external: #f3e8fd; --external-fg: #6b2fa3;
          font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif; font-size: 16px; line-height: 1.55;
        }
        @media (prefers-color-scheme: dark) {
          :root { --bg: #16181b; --fg: #e4e6e8; --muted: #9aa3ac; --line: #33383e; --panel: #1f2226; --accent: #7aa7ff;
            --event: #1c2a45; --event-fg: #a9c5ff; --command: #3a2a15; --command-fg: #ffc98a; --query: #1d3320; --query-fg: #a6e0a9;
            --external: #2e2140; --external-fg: #d9b8ff; }
        }
        * { box-sizing: border-box; }
        body { margin: 0; background: var(--bg); color: var(--fg); display: grid; grid-template-columns: 17rem minmax(0, 1fr); min-height: 100vh; }
        a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
        .sidebar { position: sticky; top: 0; height: 100vh; overflow-y: auto; padding: 1.2rem 1rem 2rem; border-right: 1px solid var(--line); background: var(--panel); font-size: .92rem; }
        .sidebar .home { display: block; font-weight: 650; font-size: 1.05rem; color: var(--fg); margin-bottom: .8rem; }
        .sidebar h2 { font-size: .72rem; letter-spacing: .08em; text-transform: uppercase; color: var(--muted); margin: 1.2rem 0 .3rem; }
        .sidebar ul { list-style: none; margin: 0; padding: 0; } .sidebar ul ul { padding-left: .9rem; border-left: 1px solid var(--line); margin: .1rem 0 .3rem .3rem; }
        .sidebar li { margin: .12rem 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
        .sidebar li.current > a { font-weight: 650; color: var(--fg); }
        .search { position: relative; }
        .search input { width: 100%; padding: .45rem .6rem; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg); font: inherit; }
        #search-results { position: absolute; z-index: 10; left: 0; right: 0; background: var(--bg); border: 1px solid var(--line); border-radius: 6px; box-shadow: 0 6px 18px rgba(0,0,0,.12); }
        #search-results:empty { display: none; }
        #search-results li { padding: .35rem .6rem; white-space: normal; }
        #search-results li.active { background: var(--panel); }
        #search-results small { display: block; color: var(--muted); }
        main { max-width: 64rem; padding: 2rem 2.5rem 4rem; }
        h1 { font-size: 1.9rem; line-height: 1.2; margin: 0 0 1rem; font-weight: 680; }
        h2 { font-size: 1.35rem; margin: 2.2rem 0 .7rem; padding-bottom: .25rem; border-bottom: 1px solid var(--line); }
        h3 { font-size: 1.08rem; margin: 1.6rem 0 .5rem; }
        p { max-width: 46rem; }
        table { border-collapse: collapse; margin: .8rem 0 1.2rem; font-size: .94rem; width: 100%; }
        th, td { border-bottom: 1px solid var(--line); padding: .45rem .7rem; text-align: left; vertical-align: top; }
        thead th { font-size: .78rem; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); border-bottom-width: 2px; }
        tbody tr:hover { background: var(--panel); }
        table.facts th { width: 13rem; color: var(--muted); font-weight: 560; }
        table.schema td:first-child { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .88rem; white-space: nowrap; }
        pre { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: .9rem 1rem; overflow-x: auto; font-size: .86rem; line-height: 1.45; }
        code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
        details.raw summary { cursor: pointer; color: var(--muted); margin: .3rem 0; }
        .badge { display: inline-block; font-size: .72rem; padding: .05rem .45rem; border-radius: 999px; font-weight: 600; vertical-align: middle; }
        .badge.event { background: var(--event); color: var(--event-fg); } .badge.command { background: var(--command); color: var(--command-fg); }
        .badge.query { background: var(--query); color: var(--query-fg); } .badge.external, .badge.service, .badge.domain { background: var(--external); color: var(--external-fg); }
        figure.diagram { margin: .6rem 0 1.4rem; border: 1px solid var(--line); border-radius: 8px; background: var(--bg); overflow: hidden; }
        .diagram-tools { display: flex; gap: .3rem; align-items: center; padding: .3rem .5rem; border-bottom: 1px solid var(--line); background: var(--panel); font-size: .8rem; color: var(--muted); }
        .diagram-tools button { font: inherit; min-width: 2rem; padding: .1rem .5rem; border: 1px solid var(--line); border-radius: 4px; background: var(--bg); color: var(--fg); cursor: pointer; }
        .diagram-tools span { margin-left: auto; }
        pre.mermaid { margin: 0; border: 0; border-radius: 0; background: none; padding: 0; overflow: hidden; position: relative; touch-action: none; }
        pre.mermaid[data-zoomable] { cursor: grab; } pre.mermaid.dragging { cursor: grabbing; }
        pre.mermaid svg { transform-origin: 0 0; max-width: none !important; }
        @media (max-width: 52rem) { body { grid-template-columns: 1fr; } .sidebar { position: static; height: auto; } main { padding: 1.2rem; } }
        """;

    /// <summary>
    /// The script: renders the Mermaid diagrams, makes each zoomable (wheel, buttons) and pannable (drag), and runs the
    /// search over the index in <c>search-index.js</c>. It needs no network and no other library.
    /// </summary>
    public const string Js = """
        (function () {
          'use strict';
          var root = document.body.getAttribute('data-root') || '';

          // Zoom and pan: a CSS transform on the rendered SVG, kept per diagram.
          function zoomable(pre) {
            var svg = pre.querySelector('svg');
            if (!svg || pre.hasAttribute('data-zoomable')) return;
            pre.setAttribute('data-zoomable', '');
            var tools = pre.parentNode.querySelector('.diagram-tools');
            if (tools) tools.hidden = false;
            svg.removeAttribute('height');
            var box = svg.viewBox && svg.viewBox.baseVal && svg.viewBox.baseVal.width ? svg.viewBox.baseVal : svg.getBBox();
            var w = box.width, h = box.height;
            svg.setAttribute('width', w); svg.setAttribute('height', h);
            svg.style.width = w + 'px'; svg.style.height = h + 'px';
            var state = { s: 1, x: 0, y: 0 };
            function apply() {
              svg.style.transform = 'translate(' + state.x + 'px,' + state.y + 'px) scale(' + state.s + ')';
              pre.setAttribute('data-scale', state.s.toFixed(3));
            }
            function fit() {
              var avail = pre.clientWidth || pre.parentNode.clientWidth || w;
              // Fit the width, but never below half size: a crowded graph stays readable and is panned instead.
              state.s = Math.max(0.5, Math.min(1.5, avail / w));
              state.x = Math.max(0, (avail - w * state.s) / 2); state.y = 8;
              pre.style.height = Math.min(h * state.s + 16, window.innerHeight * 0.8) + 'px';
              apply();
            }
            function zoomAt(factor, cx, cy) {
              var s = Math.min(8, Math.max(0.1, state.s * factor));
              state.x = cx - (cx - state.x) * (s / state.s);
              state.y = cy - (cy - state.y) * (s / state.s);
              state.s = s; apply();
            }
            pre.addEventListener('wheel', function (e) {
              e.preventDefault();
              var r = pre.getBoundingClientRect();
              zoomAt(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - r.left, e.clientY - r.top);
            }, { passive: false });
            var drag = null;
            pre.addEventListener('pointerdown', function (e) {
              drag = { x: e.clientX - state.x, y: e.clientY - state.y };
              pre.classList.add('dragging');
              if (pre.setPointerCapture) pre.setPointerCapture(e.pointerId);
            });
            pre.addEventListener('pointermove', function (e) {
              if (!drag) return;
              state.x = e.clientX - drag.x; state.y = e.clientY - drag.y; apply();
            });
            function end() { drag = null; pre.classList.remove('dragging'); }
            pre.addEventListener('pointerup', end);
            pre.addEventListener('pointercancel', end);
            pre.addEventListener('dblclick', fit);
            if (tools) tools.addEventListener('click', function (e) {
              var what = e.target.getAttribute && e.target.getAttribute('data-zoom');
              if (what === 'in') zoomAt(1.25, pre.clientWidth / 2, pre.clientHeight / 2);
              else if (what === 'out') zoomAt(0.8, pre.clientWidth / 2, pre.clientHeight / 2);
              else if (what === 'fit') fit();
            });
            fit();
          }

          function render() {
            if (!window.mermaid) { document.body.setAttribute('data-diagrams', 'missing'); return; }
            var dark = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches;
            window.mermaid.initialize({ startOnLoad: false, securityLevel: 'strict', theme: dark ? 'dark' : 'default', flowchart: { useMaxWidth: false } });
            window.mermaid.run({ querySelector: 'pre.mermaid' }).then(function () {
              Array.prototype.forEach.call(document.querySelectorAll('pre.mermaid'), zoomable);
              document.body.setAttribute('data-diagrams', 'ready');
            }, function (err) {
              document.body.setAttribute('data-diagrams', 'failed');
              if (window.console) console.error(err);
            });
          }

          // Search: names first (prefix before substring), then descriptions; Enter opens the highlighted result.
          function search() {
            var input = document.getElementById('search');
            var list = document.getElementById('search-results');
            var index = window.FACTUM_SEARCH || [];
            if (!input || !list) return;
            var active = 0, shown = [];
            function show() {
              var q = input.value.trim().toLowerCase();
              list.textContent = '';
              shown = [];
              if (!q) return;
              var scored = [];
              index.forEach(function (e) {
                var n = e.n.toLowerCase(), score = n.indexOf(q) === 0 ? 0 : n.indexOf(q) > 0 ? 1 : (e.d || '').toLowerCase().indexOf(q) >= 0 ? 2 : -1;
                if (score >= 0) scored.push({ e: e, s: score });
              });
              scored.sort(function (a, b) { return a.s - b.s || a.e.n.localeCompare(b.e.n); });
              shown = scored.slice(0, 15).map(function (x) { return x.e; });
              active = 0;
              shown.forEach(function (e, i) {
                var li = document.createElement('li');
                li.setAttribute('role', 'option');
                if (i === active) li.className = 'active';
                var a = document.createElement('a');
                a.href = root + e.u;
                a.textContent = e.n + ' ';
                var badge = document.createElement('span');
                badge.className = 'badge ' + e.k;
                badge.textContent = e.k;
                a.appendChild(badge);
                li.appendChild(a);
                if (e.d) { var small = document.createElement('small'); small.textContent = e.d; li.appendChild(small); }
                list.appendChild(li);
              });
            }
            input.addEventListener('input', show);
            input.addEventListener('keydown', function (e) {
              if (e.key === 'Enter' && shown[active]) { window.location.href = root + shown[active].u; }
              else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
                e.preventDefault();
                active = (active + (e.key === 'ArrowDown' ? 1 : shown.length - 1)) % Math.max(1, shown.length);
                Array.prototype.forEach.call(list.children, function (li, i) { li.className = i === active ? 'active' : ''; });
              } else if (e.key === 'Escape') { input.value = ''; show(); }
            });
          }

          search();
          render();
        })();
        """;
}
