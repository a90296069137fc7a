// Record every JavaScript error first, so nothing that goes wrong later is
// lost (the browser test asserts window.__sluiceErrors stays empty).
(function () {
  'use strict';
  var errors = (window.__sluiceErrors = window.__sluiceErrors || []);
  function push(what) {
    try {
      errors.push(String(what));
    } catch (_) {
      // nothing left to do
    }
  }
  var previousOnError = window.onerror;
  window.onerror = function (message, source, line, column, error) {
    push((error && error.stack) || message + ' at ' + source + ':' + line + ':' + column);
    return typeof previousOnError === 'function' ? previousOnError.apply(this, arguments) : false;
  };
  window.addEventListener('unhandledrejection', function (event) {
    var reason = event.reason;
    push('unhandled rejection: ' + ((reason && reason.stack) || reason));
  });
  var originalError = console.error;
  console.error = function () {
    push(Array.prototype.map.call(arguments, String).join(' '));
    return originalError.apply(console, arguments);
  };
})();

// The sluice dashboard: one page, hash routing (#/overview, #/routes, ...),
// polling the admin JSON API once a second while the tab is visible.
//
// Everything from the API reaches the DOM as text nodes or attribute values
// (through h() and patch() below), never as HTML.
(function () {
  'use strict';

  var POLL_MS = 1000;
  var FETCH_TIMEOUT_MS = 5000;
  var PAGE_SIZE = 100;
  var SEARCH_DEBOUNCE_MS = 150;
  var SPARK_POINTS = 120;
  var LIST_CAP = 200;
  var SVG_NS = 'http://www.w3.org/2000/svg';

  // ---------------------------------------------------------------------
  // A tiny DOM builder and in-place patcher: pages are re-described on every
  // poll and patched onto the live DOM, so nothing flickers, focus and
  // selection survive, and rows are matched by key.

  function addChildren(out, child) {
    if (child === null || child === undefined || child === false || child === true) return;
    if (Array.isArray(child)) {
      for (var i = 0; i < child.length; i++) addChildren(out, child[i]);
    } else if (typeof child === 'object') {
      out.push(child);
    } else {
      out.push(String(child));
    }
  }

  function h(tag, attrs) {
    var children = [];
    for (var i = 2; i < arguments.length; i++) addChildren(children, arguments[i]);
    return { tag: tag, attrs: attrs || {}, children: children, svg: false };
  }

  function s(tag, attrs) {
    var node = h.apply(null, arguments);
    node.svg = true;
    return node;
  }

  function keyOf(v) {
    return typeof v === 'object' && v.attrs.key !== undefined && v.attrs.key !== null
      ? String(v.attrs.key)
      : null;
  }

  function create(v) {
    if (typeof v === 'string') return document.createTextNode(v);
    var el = v.svg ? document.createElementNS(SVG_NS, v.tag) : document.createElement(v.tag);
    el.__tag = v.tag;
    el.__svg = v.svg;
    el.__key = keyOf(v);
    var props = v.attrs.props;
    if (props) {
      for (var p in props) el[p] = props[p];
    }
    update(el, v);
    return el;
  }

  function update(el, v) {
    var next = {};
    for (var k in v.attrs) {
      if (k === 'key' || k === 'on' || k === 'props') continue;
      var value = v.attrs[k];
      if (value === null || value === undefined || value === false) continue;
      next[k] = value === true ? '' : String(value);
    }
    var prev = el.__attrs || {};
    for (var old in prev) {
      if (!(old in next)) el.removeAttribute(old);
    }
    for (var name in next) {
      if (prev[name] !== next[name]) el.setAttribute(name, next[name]);
    }
    el.__attrs = next;
    var on = v.attrs.on || {};
    el.__on = on;
    el.__bound = el.__bound || {};
    Object.keys(on).forEach(function (type) {
      if (el.__bound[type]) return;
      el.__bound[type] = true;
      el.addEventListener(type, function (event) {
        var handler = el.__on[type];
        if (handler) handler(event, el);
      });
    });
    patchChildren(el, v.children);
  }

  function reusable(node, v) {
    if (!node || node.__key) return false;
    if (typeof v === 'string') return node.nodeType === 3;
    return node.__tag === v.tag && node.__svg === v.svg;
  }

  function patchChildren(el, vs) {
    var keyed = null;
    var used = new Set();
    for (var i = 0; i < vs.length; i++) {
      var v = vs[i];
      var key = keyOf(v);
      var node = null;
      if (key !== null) {
        if (!keyed) {
          keyed = new Map();
          el.childNodes.forEach(function (c) {
            if (c.__key) keyed.set(c.__key, c);
          });
        }
        node = keyed.get(key) || null;
        if (node && (used.has(node) || node.__tag !== v.tag || node.__svg !== v.svg)) node = null;
      } else if (reusable(el.childNodes[i], v) && !used.has(el.childNodes[i])) {
        node = el.childNodes[i];
      }
      if (node) {
        if (typeof v === 'string') {
          if (node.nodeValue !== v) node.nodeValue = v;
        } else {
          update(node, v);
        }
      } else {
        node = create(v);
      }
      used.add(node);
      var at = el.childNodes[i];
      if (at !== node) el.insertBefore(node, at || null);
    }
    while (el.childNodes.length > vs.length) el.removeChild(el.lastChild);
  }

  function patch(el, vnode) {
    var list = [];
    addChildren(list, vnode);
    patchChildren(el, list);
  }

  // ---------------------------------------------------------------------
  // Formatting.

  var numberFormat = new Intl.NumberFormat('en-US');

  function fmtInt(n) {
    return n === null || n === undefined ? '–' : numberFormat.format(n);
  }

  function fmtRate(x) {
    if (x === null || x === undefined) return '–';
    if (x === 0) return '0';
    if (x < 0.1) return x.toFixed(2);
    if (x < 100) return x.toFixed(1);
    return numberFormat.format(Math.round(x));
  }

  function fmtPct(ratio) {
    if (ratio === null || ratio === undefined) return '–';
    if (ratio === 0) return '0%';
    var pct = ratio * 100;
    if (pct < 0.1) return '<0.1%';
    return (pct < 10 ? pct.toFixed(1) : pct.toFixed(0)) + '%';
  }

  function fmtMs(ms) {
    if (ms === null || ms === undefined) return '–';
    if (ms < 1) return ms.toFixed(2) + ' ms';
    if (ms < 100) return ms.toFixed(1) + ' ms';
    if (ms < 10000) return Math.round(ms) + ' ms';
    return (ms / 1000).toFixed(1) + ' s';
  }

  function fmtDuration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var d = Math.floor(seconds / 86400);
    var hr = Math.floor((seconds % 86400) / 3600);
    var m = Math.floor((seconds % 3600) / 60);
    var sec = seconds % 60;
    if (d > 0) return d + ' d ' + hr + ' h';
    if (hr > 0) return hr + ' h ' + m + ' min';
    if (m > 0) return m + ' min ' + sec + ' s';
    return sec + ' s';
  }

  function fmtTime(date) {
    return date.toLocaleTimeString('en-GB', { hour12: false });
  }

  function fmtDate(unixSeconds) {
    var d = new Date(unixSeconds * 1000);
    return d.toISOString().slice(0, 10);
  }

  function fmtAgo(unixSeconds) {
    if (!unixSeconds) return 'never';
    var ago = Date.now() / 1000 - unixSeconds;
    if (ago < 0) ago = 0;
    return fmtDuration(ago) + ' ago';
  }

  function objectName(o) {
    if (!o) return '–';
    var name = (o.namespace ? o.namespace + '/' : '') + (o.name || '');
    return o.kind + (name ? ' ' + name : '');
  }

  function serviceId(service) {
    return service ? service.namespace + '/' + service.service + ':' + service.port : null;
  }

  function plural(n, one, many) {
    return fmtInt(n) + ' ' + (n === 1 ? one : many || one + 's');
  }

  // ---------------------------------------------------------------------
  // Shared pieces.

  function hashFor(page, params) {
    var query = new URLSearchParams();
    Object.keys(params || {}).forEach(function (k) {
      var v = params[k];
      if (v !== null && v !== undefined && v !== '' && v !== false && v !== 0) query.set(k, String(v));
    });
    var qs = query.toString();
    return '#/' + page + (qs ? '?' + qs : '');
  }

  function routeHref(name) {
    return '#/routes/' + encodeURIComponent(name);
  }

  function routeLink(name, text) {
    return h('a', { href: routeHref(name), 'data-route-link': name, title: name }, text || name);
  }

  function routeLinks(names, cap, moreHref) {
    names = names || [];
    cap = cap || 12;
    if (names.length === 0) return h('span', { class: 'muted' }, 'none');
    var shown = names.slice(0, cap);
    return h(
      'span',
      { class: 'links' },
      shown.map(function (n) {
        return routeLink(n);
      }),
      names.length > cap
        ? h('a', { href: moreHref || '#/routes', class: 'more' }, '+' + (names.length - cap) + ' more')
        : null
    );
  }

  function healthBadge(health) {
    var failing = health && health.state === 'failing';
    return h(
      'span',
      { class: 'badge ' + (failing ? 'bad' : 'good'), 'data-field': 'health' },
      failing ? 'failing' : 'ok'
    );
  }

  function reasonsList(reasons) {
    if (!reasons || reasons.length === 0) return null;
    return h(
      'ul',
      { class: 'reasons', 'data-field': 'reasons' },
      reasons.map(function (r) {
        return h('li', null, r);
      })
    );
  }

  function isFailing(x) {
    return !!(x && x.health && x.health.state === 'failing');
  }

  function num(field, value, text, title) {
    return h('td', { class: 'num', 'data-field': field, 'data-value': value === null || value === undefined ? '' : value, title: title || null }, text);
  }

  function pageHead(title, subtitle, extra) {
    return h('div', { class: 'page-head' }, h('h1', null, title), subtitle ? h('span', { class: 'muted' }, subtitle) : null, extra || null);
  }

  function loadingOr(data, fn) {
    if (data) return fn(data);
    if (state.error) return h('p', { class: 'muted' }, 'Waiting for the admin API…');
    return h('p', { class: 'muted' }, 'loading…');
  }

  function card(title, attrs) {
    var children = Array.prototype.slice.call(arguments, 2);
    attrs = attrs || {};
    attrs.class = 'card' + (attrs.class ? ' ' + attrs.class : '');
    return h('section', attrs, title ? h('h2', null, title) : null, children);
  }

  function dl(pairs) {
    return h(
      'dl',
      { class: 'pairs' },
      pairs
        .filter(function (p) {
          return p;
        })
        .map(function (p) {
          return [h('dt', null, p[0]), h('dd', p[2] ? { 'data-field': p[2] } : null, p[1])];
        })
    );
  }

  // Like dl(), two pairs a row.
  function dl2(pairs) {
    var node = dl(pairs);
    node.attrs.class = 'pairs cols2';
    return node;
  }

  function windowsTable(live) {
    var a = (live && live.last_10s) || {};
    var b = (live && live.last_1m) || {};
    function row(label, field, fa, fb) {
      return h('tr', null, h('th', null, label), h('td', { class: 'num', 'data-field': field + '-10s' }, fa), h('td', { class: 'num', 'data-field': field + '-1m' }, fb));
    }
    return h(
      'table',
      { class: 'windows' },
      h('thead', null, h('tr', null, h('th', null, ''), h('th', { class: 'num' }, '10 s'), h('th', { class: 'num' }, '1 min'))),
      h(
        'tbody',
        null,
        row('req/s', 'rate', fmtRate(a.rate), fmtRate(b.rate)),
        row('requests', 'requests', fmtInt(a.requests), fmtInt(b.requests)),
        row('5xx', 'errors', fmtInt(a.errors) + ' (' + fmtPct(a.error_ratio) + ')', fmtInt(b.errors) + ' (' + fmtPct(b.error_ratio) + ')'),
        row('4xx', 'client-errors', fmtInt(a.client_errors), fmtInt(b.client_errors)),
        row('p50', 'p50', fmtMs(a.p50_ms), fmtMs(b.p50_ms)),
        row('p99', 'p99', fmtMs(a.p99_ms), fmtMs(b.p99_ms))
      )
    );
  }

  function filterBox(id, placeholder, value, onInput) {
    return h('input', {
      id: id,
      type: 'search',
      class: 'search',
      placeholder: placeholder,
      autocomplete: 'off',
      spellcheck: 'false',
      props: { value: value || '' },
      on: { input: onInput }
    });
  }

  function matchesWords(text, q) {
    var words = (q || '').toLowerCase().split(/\s+/).filter(Boolean);
    text = text.toLowerCase();
    return words.every(function (w) {
      return text.indexOf(w) >= 0;
    });
  }

  function debounce(fn, ms) {
    var t = null;
    return function () {
      var args = arguments;
      clearTimeout(t);
      t = setTimeout(function () {
        fn.apply(null, args);
      }, ms);
    };
  }

  // ---------------------------------------------------------------------
  // The API.

  function apiUrl(path) {
    // Relative to /dashboard/, so a path prefix in front of the admin port works.
    return new URL('../api/' + path, window.location.href).toString();
  }

  function api(path, acceptStatuses) {
    var controller = new AbortController();
    var timer = setTimeout(function () {
      controller.abort();
    }, FETCH_TIMEOUT_MS);
    return fetch(apiUrl(path), { cache: 'no-store', signal: controller.signal, headers: { Accept: 'application/json' } })
      .then(function (resp) {
        if (!resp.ok && !(acceptStatuses && acceptStatuses.indexOf(resp.status) >= 0)) {
          throw new Error('HTTP ' + resp.status + ' for /api/' + path.split('?')[0]);
        }
        return resp.json().then(function (body) {
          return { status: resp.status, body: body };
        });
      })
      .catch(function (e) {
        if (e && e.name === 'AbortError') throw new Error('no answer within ' + FETCH_TIMEOUT_MS / 1000 + ' s');
        throw e;
      })
      .finally(function () {
        clearTimeout(timer);
      });
  }

  function body(path) {
    return api(path).then(function (r) {
      return r.body;
    });
  }

  // ---------------------------------------------------------------------
  // State and the poll loop.

  var state = {
    view: null, // {page, param, query}
    data: null,
    error: null,
    lastOk: null,
    generation: 0,
    timer: null
  };

  // Page-local state that outlives a poll.
  var routesState = { q: '', failing: false, offset: 0 };
  var listFilters = { services: '', middlewares: '', tls: '', diagnostics: '', gateways: '' };
  var traffic = { points: [], lastTotal: null, lastTime: null };
  var tester = { query: null, pending: false, result: null, status: null, error: null, seq: 0 };

  function parseHash() {
    var raw = window.location.hash.replace(/^#\/?/, '');
    var qi = raw.indexOf('?');
    var path = qi >= 0 ? raw.slice(0, qi) : raw;
    var query = new URLSearchParams(qi >= 0 ? raw.slice(qi + 1) : '');
    var slash = path.indexOf('/');
    var page = slash >= 0 ? path.slice(0, slash) : path;
    var param = slash >= 0 ? path.slice(slash + 1) : null;
    if (param !== null) {
      try {
        param = decodeURIComponent(param);
      } catch (_) {
        // keep it as typed
      }
    }
    if (!pages[page]) page = 'overview';
    if (page === 'routes' && param) page = 'route';
    return { page: page, param: param, query: query };
  }

  var navigations = 0;

  // Each navigation builds its page afresh (so inputs take the new values);
  // polls patch the same page in place.
  function pageKey(view) {
    return view.page + ':' + view.nonce;
  }

  function onRoute() {
    var view = parseHash();
    view.nonce = ++navigations;
    var page = pages[view.page];
    if (page.enter) page.enter(view);
    state.view = view;
    state.data = null;
    document.title = 'sluice · ' + page.title + (view.param ? ' · ' + view.param : '');
    render();
    window.scrollTo(0, 0);
    refresh();
  }

  function refresh() {
    clearTimeout(state.timer);
    state.timer = null;
    var view = state.view;
    var page = pages[view.page];
    var generation = ++state.generation;
    if (!page.load) {
      render();
      return;
    }
    page
      .load(view)
      .then(
        function (data) {
          if (generation !== state.generation) return;
          state.data = data;
          state.error = null;
          state.lastOk = new Date();
        },
        function (e) {
          if (generation !== state.generation) return;
          state.error = e;
        }
      )
      .then(function () {
        if (generation !== state.generation) return;
        render();
        schedule();
      });
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = null;
    if (document.hidden) return;
    if (pages[state.view.page].load) state.timer = setTimeout(refresh, POLL_MS);
  }

  document.addEventListener('visibilitychange', function () {
    if (document.hidden) {
      clearTimeout(state.timer);
      state.timer = null;
      updateLive();
    } else {
      refresh();
    }
  });

  function replaceHash(hash) {
    if (window.location.hash !== hash) history.replaceState(null, '', hash);
  }

  var app = document.getElementById('app');
  var banner = document.getElementById('api-banner');
  var liveText = document.getElementById('live-text');
  var liveBox = document.getElementById('live');

  function render() {
    var page = pages[state.view.page];
    patch(app, page.render(state.view, state.data));
    updateNav();
    updateLive();
    updateBanner();
  }

  function updateNav() {
    var current = state.view.page === 'route' ? 'routes' : state.view.page;
    document.querySelectorAll('#nav a').forEach(function (a) {
      if (a.getAttribute('data-nav') === current) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    });
  }

  function updateLive() {
    var status;
    var text;
    if (state.error) {
      status = 'offline';
      text = 'offline';
    } else if (document.hidden) {
      status = 'paused';
      text = 'paused';
    } else if (!pages[state.view.page].load) {
      status = 'idle';
      text = state.lastOk ? 'updated ' + fmtTime(state.lastOk) : 'idle';
    } else if (state.lastOk) {
      status = 'on';
      text = 'live · ' + fmtTime(state.lastOk);
    } else {
      status = 'idle';
      text = 'connecting…';
    }
    liveBox.className = 'live ' + status;
    if (liveText.textContent !== text) liveText.textContent = text;
  }

  function updateBanner() {
    if (!state.error) {
      banner.hidden = true;
      return;
    }
    var text =
      'Cannot reach the sluice admin API (' +
      (state.error.message || String(state.error)) +
      '). ' +
      (state.lastOk ? 'Showing the data of ' + fmtTime(state.lastOk) + '; ' : '') +
      'retrying every second.';
    if (banner.textContent !== text) banner.textContent = text;
    banner.hidden = false;
  }

  // ---------------------------------------------------------------------
  // Overview.

  function recordTraffic(overview) {
    var total = 0;
    var rate10 = 0;
    overview.entrypoints.forEach(function (e) {
      total += e.live.total;
      rate10 += e.live.last_10s.rate;
    });
    var now = performance.now();
    var rate = rate10;
    if (traffic.lastTotal !== null && now - traffic.lastTime > 200 && now - traffic.lastTime < 10000) {
      rate = Math.max(0, (total - traffic.lastTotal) / ((now - traffic.lastTime) / 1000));
    }
    traffic.lastTotal = total;
    traffic.lastTime = now;
    traffic.points.push(rate);
    if (traffic.points.length > SPARK_POINTS) traffic.points.splice(0, traffic.points.length - SPARK_POINTS);
  }

  function sparkline(points) {
    var W = 600;
    var H = 70;
    var max = Math.max.apply(null, points.concat([1]));
    // The x axis spans at least 30 polls, then grows to SPARK_POINTS.
    var span = Math.min(SPARK_POINTS, Math.max(30, points.length));
    var step = W / (span - 1);
    var start = W - (points.length - 1) * step;
    var coords = points.map(function (p, i) {
      return [start + i * step, H - 4 - (p / max) * (H - 10)];
    });
    var line = coords
      .map(function (c, i) {
        return (i ? 'L' : 'M') + c[0].toFixed(1) + ' ' + c[1].toFixed(1);
      })
      .join(' ');
    var area = coords.length ? line + ' L' + W + ' ' + H + ' L' + coords[0][0].toFixed(1) + ' ' + H + ' Z' : '';
    return s(
      'svg',
      { class: 'sparkline', viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'none', role: 'img', 'aria-label': 'requests per second' },
      s('line', { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, class: 'axis' }),
      coords.length > 1 ? s('path', { d: area, class: 'area' }) : null,
      coords.length > 1 ? s('path', { d: line, class: 'line' }) : null
    );
  }

  function entrypointCard(e) {
    var a = e.live.last_10s;
    var b = e.live.last_1m;
    return h(
      'section',
      { class: 'card entrypoint', key: 'ep-' + e.name, 'data-entrypoint': e.name },
      h('h2', null, e.name, h('span', { class: 'muted small' }, e.address ? ' ' + e.address : ' (off)')),
      h(
        'div',
        { class: 'bignums' },
        h('div', null, h('span', { class: 'big', 'data-field': 'rate', 'data-value': a.rate }, fmtRate(a.rate)), h('span', { class: 'label' }, 'req/s (10 s)')),
        h('div', null, h('span', { class: 'big' + (b.error_ratio > 0.05 ? ' bad-text' : ''), 'data-field': 'error-ratio', 'data-value': b.error_ratio }, fmtPct(b.error_ratio)), h('span', { class: 'label' }, '5xx (1 min)')),
        h('div', null, h('span', { class: 'big', 'data-field': 'p99', 'data-value': b.p99_ms === null ? '' : b.p99_ms }, fmtMs(b.p99_ms)), h('span', { class: 'label' }, 'p99 (1 min)'))
      ),
      windowsTable(e.live),
      h('p', { class: 'muted small' }, h('span', { 'data-field': 'total', 'data-value': e.live.total }, fmtInt(e.live.total)), ' requests since start · ', fmtInt(e.open_connections), ' open connections')
    );
  }

  function failingHref(item) {
    switch (item.kind) {
      case 'route':
        return routeHref(item.name);
      case 'service':
        return hashFor('services', { q: item.name });
      case 'middleware':
        return hashFor('middlewares', { q: item.name });
      case 'certificate':
        return hashFor('tls', { q: item.name });
      default:
        return '#/overview';
    }
  }

  var overviewPage = {
    title: 'Overview',
    load: function () {
      // /api/overview lists failing routes and Services; failing Middlewares and
      // certificates come from their own lists.
      return Promise.all([body('overview'), body('middlewares'), body('tls')]).then(function (r) {
        recordTraffic(r[0]);
        return { overview: r[0], middlewares: r[1], tls: r[2] };
      });
    },
    render: function (view, data) {
      return h(
        'section',
        { class: 'page', id: 'overview', key: pageKey(view) },
        loadingOr(data, function (d) {
          var o = d.overview;
          var c = o.config;
          var failing = o.failing.slice();
          d.middlewares.filter(isFailing).forEach(function (m) {
            failing.push({ kind: 'middleware', name: m.namespace + '/' + m.name, reasons: m.health.reasons });
          });
          d.tls.filter(isFailing).forEach(function (t) {
            failing.push({ kind: 'certificate', name: t.secret || 'default certificate', reasons: t.health.reasons });
          });
          var failingTotal = c.failing_routes + c.failing_services;
          var listedRoutesServices = o.failing.length;
          var now = traffic.points.length ? traffic.points[traffic.points.length - 1] : 0;
          var peak = Math.max.apply(null, traffic.points.concat([0]));
          return [
            pageHead('Overview', 'sluice ' + o.version + ' · up ' + fmtDuration(o.uptime_seconds) + ' · ' + (o.ready ? 'ready' : 'not ready')),
            h(
              'div',
              { class: 'grid three' },
              o.entrypoints.map(entrypointCard),
              h(
                'section',
                { class: 'card traffic', key: 'traffic' },
                h('h2', null, 'Requests per second'),
                h('div', { class: 'bignums' }, h('div', null, h('span', { class: 'big', 'data-field': 'overall-rate', 'data-value': now }, fmtRate(now)), h('span', { class: 'label' }, 'now, all entrypoints'))),
                sparkline(traffic.points),
                h('p', { class: 'muted small' }, 'Peak ', fmtRate(peak), ' req/s over the last ', fmtInt(traffic.points.length), ' polls (kept by this page while it is open).')
              )
            ),
            h(
              'div',
              { class: 'grid two' },
              card(
                'Configuration',
                { key: 'config', id: 'config', class: c.reload_failures > 0 || c.rejected_objects > 0 ? 'warn' : '' },
                dl2([
                  ['Last reload', c.last_reload.at_unix ? [fmtAgo(c.last_reload.at_unix), h('span', { class: 'muted' }, ' · ' + c.last_reload.kind + ' · ' + c.last_reload.duration_ms.toFixed(1) + ' ms')] : 'not yet', 'last-reload'],
                  ['Reloads', fmtInt(c.reloads), 'reloads'],
                  ['Reload failures', h('span', { class: c.reload_failures ? 'bad-text' : '' }, fmtInt(c.reload_failures)), 'reload-failures'],
                  ['Endpoint updates', fmtInt(c.endpoint_updates), 'endpoint-updates'],
                  ['Rejected objects', h('a', { href: '#/diagnostics', class: c.rejected_objects ? 'bad-text' : '' }, fmtInt(c.rejected_objects)), 'rejected-objects'],
                  ['Diagnostics', h('a', { href: '#/diagnostics' }, fmtInt(c.diagnostics)), 'diagnostics'],
                  ['Routes', [h('a', { href: '#/routes' }, fmtInt(c.routes)), c.failing_routes ? h('a', { href: hashFor('routes', { failing: 1 }), class: 'bad-text' }, ' · ' + fmtInt(c.failing_routes) + ' failing') : null], 'routes'],
                  ['Services', [h('a', { href: '#/services' }, fmtInt(c.services)), c.failing_services ? h('span', { class: 'bad-text' }, ' · ' + fmtInt(c.failing_services) + ' failing') : null], 'services'],
                  ['Middlewares', h('a', { href: '#/middlewares' }, fmtInt(c.middlewares)), 'middlewares'],
                  ['Certificates', h('a', { href: '#/tls' }, fmtInt(c.certificates)), 'certificates']
                ])
              ),
              card(
                'Failing',
                { key: 'failing', id: 'failing', class: failing.length ? 'failing' : 'healthy' },
                failing.length === 0
                  ? h('p', { class: 'good-text' }, 'Everything is healthy: every route has a ready endpoint, no 5xx burst, no diagnostic.')
                  : h(
                      'ul',
                      { class: 'failing-list' },
                      failing.map(function (f) {
                        return h(
                          'li',
                          { key: f.kind + ':' + f.name, class: 'failing', 'data-kind': f.kind, 'data-name': f.name },
                          h('span', { class: 'kind' }, f.kind),
                          ' ',
                          h('a', { href: failingHref(f) }, f.name),
                          reasonsList(f.reasons)
                        );
                      })
                    ),
                failingTotal > listedRoutesServices ? h('p', { class: 'muted small' }, 'Showing ' + listedRoutesServices + ' of ' + failingTotal + ' failing routes and Services: ', h('a', { href: hashFor('routes', { failing: 1 }) }, 'all failing routes'), '.') : null
              )
            )
          ];
        })
      );
    }
  };

  // ---------------------------------------------------------------------
  // Routes.

  function routesQuery() {
    var q = 'q=' + encodeURIComponent(routesState.q) + '&offset=' + routesState.offset + '&limit=' + PAGE_SIZE;
    if (routesState.failing) q += '&state=failing';
    return 'routes/page?' + q;
  }

  function routesHash() {
    return hashFor('routes', { q: routesState.q, failing: routesState.failing ? 1 : 0, offset: routesState.offset });
  }

  var searchChanged = debounce(function (value) {
    if (value === routesState.q) return;
    routesState.q = value;
    routesState.offset = 0;
    replaceHash(routesHash());
    refresh();
  }, SEARCH_DEBOUNCE_MS);

  function middlewareChip(ref) {
    return h('a', { class: 'chip', href: hashFor('middlewares', { q: ref }), title: ref }, ref.replace(/@kubernetescrd$/, ''));
  }

  function entrypointBadges(r) {
    var out = [];
    if (r.entrypoints && r.entrypoints.web) out.push(h('span', { class: 'badge plain' }, 'web'));
    if (r.entrypoints && r.entrypoints.websecure) out.push(h('span', { class: 'badge plain' }, 'websecure'));
    if (r.redirect_https) out.push(h('span', { class: 'badge info', title: 'plain-HTTP requests are redirected to HTTPS' }, '→ https'));
    return out;
  }

  function routeRow(r) {
    var failing = isFailing(r);
    var a = r.live.last_10s;
    var b = r.live.last_1m;
    var svc = serviceId(r.service);
    return h(
      'tr',
      { key: r.name, 'data-route': r.name, class: failing ? 'failing' : null },
      h('td', { class: 'host' }, h('a', { href: routeHref(r.name), title: r.name, 'data-field': 'host' }, r.host || '* (any host)')),
      h('td', { class: 'path' }, r.path ? h('code', null, r.path) : h('span', { class: 'muted' }, 'default backend')),
      h('td', null, r.path_type || '–'),
      h('td', { class: 'eps' }, entrypointBadges(r)),
      h('td', null, h('a', { href: hashFor('routes', { q: (r.ingress.namespace || '') + ' ' + r.ingress.name }), title: objectName(r.ingress) }, (r.ingress.namespace ? r.ingress.namespace + '/' : '') + r.ingress.name)),
      h('td', null, svc ? h('a', { href: hashFor('services', { q: svc }) }, svc) : h('span', { class: 'muted' }, '–')),
      h('td', { class: 'chips' }, (r.middlewares || []).map(middlewareChip)),
      num('rate', a.rate, fmtRate(a.rate), fmtInt(a.requests) + ' requests in the last 10 s'),
      num('total', r.live.total, fmtInt(r.live.total)),
      num('error-ratio', b.error_ratio, fmtPct(b.error_ratio), fmtInt(b.errors) + ' 5xx of ' + fmtInt(b.requests) + ' in the last minute'),
      num('p99', b.p99_ms === null ? '' : b.p99_ms, fmtMs(b.p99_ms)),
      h('td', { class: 'state' }, healthBadge(r.health), reasonsList(r.health.reasons))
    );
  }

  var routesPage = {
    title: 'Routes',
    enter: function (view) {
      routesState.q = view.query.get('q') || '';
      routesState.failing = view.query.get('failing') === '1';
      routesState.offset = Math.max(0, parseInt(view.query.get('offset') || '0', 10) || 0);
    },
    load: function () {
      return body(routesQuery());
    },
    render: function (view, data) {
      var toolbar = h(
        'div',
        { class: 'toolbar', key: 'toolbar' },
        filterBox('search', 'Search host, path, Ingress, Service, middleware…', routesState.q, function (e) {
          searchChanged(e.target.value.trim());
        }),
        h(
          'label',
          { class: 'toggle' },
          h('input', {
            id: 'failing-only',
            type: 'checkbox',
            props: { checked: routesState.failing },
            on: {
              change: function (e) {
                routesState.failing = e.target.checked;
                routesState.offset = 0;
                replaceHash(routesHash());
                refresh();
              }
            }
          }),
          ' failing only'
        ),
        h('span', { class: 'spacer' }),
        data
          ? h(
              'span',
              { class: 'pager' },
              h('button', {
                id: 'prev',
                type: 'button',
                disabled: routesState.offset === 0,
                on: {
                  click: function () {
                    routesState.offset = Math.max(0, routesState.offset - PAGE_SIZE);
                    replaceHash(routesHash());
                    refresh();
                  }
                }
              }, '‹ prev'),
              h('span', { id: 'page-info', class: 'muted' }, data.total === 0 ? '0 routes' : fmtInt(data.offset + 1) + '–' + fmtInt(data.offset + data.items.length) + ' of ' + fmtInt(data.total)),
              h('button', {
                id: 'next',
                type: 'button',
                disabled: data.offset + data.items.length >= data.total,
                on: {
                  click: function () {
                    routesState.offset += PAGE_SIZE;
                    replaceHash(routesHash());
                    refresh();
                  }
                }
              }, 'next ›')
            )
          : null
      );
      return h(
        'section',
        { class: 'page', id: 'routes', key: pageKey(view) },
        pageHead('Routes', data ? plural(data.total, 'route') + (routesState.q ? ' matching' : '') + ' · ' + fmtInt(data.failing) + ' failing' : null),
        toolbar,
        loadingOr(data, function (d) {
          if (d.offset > 0 && d.items.length === 0 && d.total > 0) {
            // The list shrank under us: go back to the first page.
            routesState.offset = 0;
            replaceHash(routesHash());
            setTimeout(refresh, 0);
          }
          return h(
            'div',
            { class: 'table-wrap', key: 'table' },
            h(
              'table',
              { class: 'list', id: 'routes-table' },
              h(
                'thead',
                null,
                h(
                  'tr',
                  null,
                  h('th', null, 'Host'),
                  h('th', null, 'Path'),
                  h('th', null, 'Type'),
                  h('th', null, 'Entrypoints'),
                  h('th', null, 'Ingress'),
                  h('th', null, 'Service'),
                  h('th', null, 'Middlewares'),
                  h('th', { class: 'num', title: 'requests per second over the last 10 s' }, 'req/s'),
                  h('th', { class: 'num', title: 'requests since sluice started' }, 'requests'),
                  h('th', { class: 'num', title: 'share of 5xx answers over the last minute' }, '5xx (1 min)'),
                  h('th', { class: 'num', title: '99th percentile duration over the last minute' }, 'p99 (1 min)'),
                  h('th', null, 'State')
                )
              ),
              h('tbody', null, d.items.map(routeRow))
            ),
            d.items.length === 0
              ? h('p', { class: 'empty' }, routesState.q || routesState.failing ? 'No route matches this search.' : 'No routes yet: no Ingress is served.')
              : null
          );
        })
      );
    }
  };

  // ---------------------------------------------------------------------
  // One route.

  function findRoute(name, offset) {
    return body('routes/page?q=' + encodeURIComponent(name) + '&limit=500&offset=' + offset).then(function (page) {
      for (var i = 0; i < page.items.length; i++) {
        if (page.items[i].name === name) return page.items[i];
      }
      if (page.offset + page.items.length < page.total) return findRoute(name, offset + page.items.length);
      return null;
    });
  }

  function endpointsTable(endpoints) {
    if (!endpoints || endpoints.length === 0) return h('p', { class: 'bad-text' }, 'No endpoints.');
    return h(
      'div',
      { class: 'table-scroll' },
      h(
      'table',
      { class: 'list compact endpoints' },
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          h('th', null, 'Endpoint'),
          h('th', null, 'Conditions'),
          h('th', null, 'In rotation'),
          h('th', { class: 'num' }, 'req/s'),
          h('th', { class: 'num' }, '5xx (1 min)'),
          h('th', { class: 'num' }, 'p99 (1 min)'),
          h('th', { class: 'num' }, 'requests')
        )
      ),
      h(
        'tbody',
        null,
        endpoints.map(function (e) {
          var b = e.live.last_1m;
          return h(
            'tr',
            { key: e.address, 'data-endpoint': e.address, class: e.in_rotation ? null : 'out' },
            h('td', null, h('code', null, e.address)),
            h(
              'td',
              null,
              h('span', { class: 'badge ' + (e.ready ? 'good' : 'bad') }, e.ready ? 'ready' : 'not ready'),
              h('span', { class: 'badge ' + (e.serving ? 'good' : 'plain') }, e.serving ? 'serving' : 'not serving'),
              e.terminating ? h('span', { class: 'badge warn' }, 'terminating') : null
            ),
            h('td', { 'data-field': 'in-rotation' }, e.in_rotation ? 'yes' : h('span', { class: 'bad-text' }, 'no')),
            num('rate', e.live.last_10s.rate, fmtRate(e.live.last_10s.rate)),
            num('errors', b.errors, fmtInt(b.errors) + ' (' + fmtPct(b.error_ratio) + ')'),
            num('p99', b.p99_ms === null ? '' : b.p99_ms, fmtMs(b.p99_ms)),
            num('total', e.live.total, fmtInt(e.live.total))
          );
        })
      )
      )
    );
  }

  function diagnosticItem(d, i) {
    var o = d.object || {};
    return h(
      'li',
      {
        key: i + ':' + objectName(o) + ':' + (o.source || '') + ':' + d.kind + ':' + d.message,
        class: 'diagnostic ' + (d.severity === 'error' ? 'failing' : 'warning'),
        'data-object': objectName(o),
        'data-source': o.source || null,
        'data-severity': d.severity,
        'data-kind': d.kind
      },
      h(
        'div',
        { class: 'diag-head' },
        h('span', { class: 'badge ' + (d.severity === 'error' ? 'bad' : 'warn') }, d.severity),
        h('code', { class: 'kind' }, d.kind),
        h('strong', null, objectName(o)),
        o.source ? h('span', { class: 'muted' }, ' in ', h('code', null, o.source)) : null
      ),
      h('p', { class: 'message' }, d.message),
      d.routes && d.routes.length ? h('p', { class: 'small' }, 'Affects: ', routeLinks(d.routes, 12, hashFor('routes', { q: o.name }))) : null
    );
  }

  var routePage = {
    title: 'Route',
    load: function (view) {
      return Promise.all([findRoute(view.param, 0), body('services'), body('middlewares')]).then(function (r) {
        return { route: r[0], services: r[1], middlewares: r[2] };
      });
    },
    render: function (view, data) {
      var name = view.param;
      return h(
        'section',
        { class: 'page', id: 'route-detail', key: pageKey(view), 'data-route-detail': name },
        h('a', { class: 'back', href: routesHash() }, '← Routes'),
        loadingOr(data, function (d) {
          var r = d.route;
          if (!r) {
            return [pageHead(name), h('p', { class: 'empty' }, 'No route named “' + name + '”: it may have been removed.')];
          }
          var failing = isFailing(r);
          var svcId = serviceId(r.service);
          var service = null;
          d.services.forEach(function (sv) {
            if (sv.id === svcId) service = sv;
          });
          var byRef = {};
          d.middlewares.forEach(function (m) {
            byRef[m.reference] = m;
          });
          return [
            h('div', { class: 'page-head' }, h('h1', { class: 'route-name' }, name), healthBadge(r.health)),
            failing ? h('div', { class: 'alert failing', 'data-field': 'health-reasons' }, h('strong', null, 'Failing:'), reasonsList(r.health.reasons)) : null,
            h(
              'div',
              { class: 'grid three', key: 'top' },
              card(
                'Rule',
                { key: 'rule' },
                dl([
                  ['Host', r.host || '* (any host)', 'host'],
                  ['Path', r.path ? h('code', null, r.path) : 'default backend', 'path'],
                  ['Path type', r.path_type || '–', 'path-type'],
                  ['Entrypoints', entrypointBadges(r), 'entrypoints'],
                  ['Redirect to HTTPS', r.redirect_https ? 'yes (plain HTTP gets a redirect)' : 'no', 'redirect-https'],
                  ['Backend protocol', r.backend_protocol, 'backend-protocol'],
                  r.priority !== undefined ? ['Priority', String(r.priority), 'priority'] : null,
                  r.sticky_cookie ? ['Sticky cookie', h('code', null, r.sticky_cookie), 'sticky-cookie'] : null,
                  r.pass_host_header_off ? ['Host header', 'the backend gets its own address as Host', 'pass-host'] : null,
                  ['State', h('code', null, r.state), 'state']
                ]),
                h('p', { class: 'small' }, h('a', { href: hashFor('tester', { host: r.host && r.host.indexOf('*') < 0 ? r.host : '', path: r.path && r.path_type !== 'Regex' ? r.path : '/' }) }, 'Try it in the route tester →'))
              ),
              card('Live', { key: 'live' }, windowsTable(r.live), h('p', { class: 'muted small' }, h('span', { 'data-field': 'total', 'data-value': r.live.total }, fmtInt(r.live.total)), ' requests since the route appeared.')),
              h('div', { class: 'stack' },
                card(
                  r.ingress.kind === 'HTTPRoute' ? 'HTTPRoute' : 'Ingress',
                  { key: 'ingress' },
                  dl([
                    ['Object', objectName(r.ingress), 'ingress'],
                    r.ingress.source ? ['Source', h('code', null, r.ingress.source)] : null
                  ]),
                  h('p', { class: 'small' }, h('a', { href: hashFor('routes', { q: (r.ingress.namespace || '') + ' ' + r.ingress.name }) }, 'All routes of this ' + (r.ingress.kind === 'HTTPRoute' ? 'HTTPRoute' : 'Ingress') + ' →')),
                  r.ingress.kind === 'HTTPRoute' ? h('p', { class: 'small' }, h('a', { href: hashFor('gateways', { q: (r.ingress.namespace || '') + '/' + r.ingress.name }) }, 'Its parents and conditions →')) : null
                ),
                card(
                  'Middlewares',
                  { key: 'middlewares', class: r.middleware_error ? 'failing' : '' },
                  r.middleware_error ? h('div', { class: 'alert failing' }, r.middleware_error) : null,
                  r.middlewares && r.middlewares.length
                    ? h(
                        'ol',
                        { class: 'middlewares' },
                        r.middlewares.map(function (ref) {
                          var m = byRef[ref];
                          return h(
                            'li',
                            { key: ref, class: m && isFailing(m) ? 'failing' : null, 'data-middleware': ref },
                            h('a', { href: hashFor('middlewares', { q: ref }) }, h('code', null, ref)),
                            m ? h('span', { class: 'muted' }, ' ' + (m.type || 'missing')) : null,
                            m && isFailing(m) ? reasonsList(m.health.reasons) : null
                          );
                        })
                      )
                    : h('p', { class: 'muted' }, 'None: requests go straight to the Service.')
                )
              )
            ),
            card(
              'Service',
              { key: 'service', class: service && isFailing(service) ? 'failing' : '' },
              svcId
                ? [
                    h('p', null, h('a', { href: hashFor('services', { q: svcId }), 'data-field': 'service' }, svcId), ' ', service ? healthBadge(service.health) : null, service && service.external_name ? h('span', { class: 'muted' }, ' ExternalName ' + service.external_name) : null),
                    service ? reasonsList(service.health.reasons) : null,
                    service ? endpointsTable(service.endpoints) : h('p', null, 'Ready endpoints: ', r.endpoints.length ? r.endpoints.join(', ') : 'none')
                  ]
                : h('p', { class: 'muted' }, 'No Service (the route answers by itself).')
            ),
            card(
              'Diagnostics',
              { key: 'diagnostics', class: r.diagnostics.length ? 'failing' : '' },
              r.diagnostics.length
                ? h('ul', { class: 'diagnostics' }, r.diagnostics.map(diagnosticItem))
                : h('p', { class: 'muted' }, 'None of the objects this route is built from has a diagnostic.')
            )
          ];
        })
      );
    }
  };

  // ---------------------------------------------------------------------
  // Services.

  function listPage(key) {
    return {
      enter: function (view) {
        listFilters[key] = view.query.get('q') || '';
      },
      filter: debounce(function (value) {
        listFilters[key] = value;
        replaceHash(hashFor(key, { q: value }));
        render();
      }, SEARCH_DEBOUNCE_MS)
    };
  }

  // At most LIST_CAP items, then a note; `columns` > 0 for table rows.
  function capped(items, renderItem, what, columns) {
    var shown = items.slice(0, LIST_CAP);
    var note = 'Showing ' + LIST_CAP + ' of ' + fmtInt(items.length) + ' ' + what + ': narrow the filter to see the others.';
    var more = null;
    if (items.length > LIST_CAP) {
      more = columns
        ? h('tr', { key: 'cap' }, h('td', { colspan: columns, class: 'muted small' }, note))
        : h('p', { class: 'muted small', key: 'cap' }, note);
    }
    return [shown.map(renderItem), more];
  }

  var servicesList = listPage('services');
  var servicesPage = {
    title: 'Services',
    enter: servicesList.enter,
    load: function () {
      return body('services');
    },
    render: function (view, data) {
      var q = listFilters.services;
      return h(
        'section',
        { class: 'page', id: 'services', key: pageKey(view) },
        pageHead('Services', data ? plural(data.length, 'Service port') + ' routed to · ' + fmtInt(data.filter(isFailing).length) + ' failing' : null),
        h('div', { class: 'toolbar', key: 'toolbar' }, filterBox('service-search', 'Filter Services…', q, function (e) {
          servicesList.filter(e.target.value.trim());
        })),
        loadingOr(data, function (list) {
          var items = list.filter(function (sv) {
            return matchesWords(sv.id + ' ' + sv.routes.join(' '), q);
          });
          items.sort(function (a, b) {
            return isFailing(b) - isFailing(a);
          });
          if (items.length === 0) return h('p', { class: 'empty' }, q ? 'No Service matches this filter.' : 'No routes send to a Service yet.');
          return h(
            'div',
            { class: 'cards', key: 'cards' },
            capped(
              items,
              function (sv) {
                var l = sv.live;
                return h(
                  'section',
                  { class: 'card service' + (isFailing(sv) ? ' failing' : ''), key: sv.id, 'data-service': sv.id },
                  h('h2', null, sv.namespace + '/' + sv.name, h('span', { class: 'muted' }, ':' + sv.port), ' ', healthBadge(sv.health)),
                  reasonsList(sv.health.reasons),
                  h(
                    'p',
                    { class: 'stats' },
                    h('span', { 'data-field': 'ready-endpoints', 'data-value': sv.ready_endpoints }, fmtInt(sv.ready_endpoints) + ' of ' + fmtInt(sv.endpoints.length) + ' endpoints in rotation'),
                    ' · ',
                    h('span', { 'data-field': 'rate', 'data-value': l.last_10s.rate }, fmtRate(l.last_10s.rate) + ' req/s'),
                    ' · ',
                    h('span', { 'data-field': 'error-ratio', 'data-value': l.last_1m.error_ratio }, fmtPct(l.last_1m.error_ratio) + ' 5xx'),
                    ' · p99 ',
                    h('span', { 'data-field': 'p99' }, fmtMs(l.last_1m.p99_ms)),
                    ' · ',
                    h('span', { 'data-field': 'total', 'data-value': l.total }, fmtInt(l.total) + ' requests'),
                    sv.external_name ? [' · ExternalName ', h('code', null, sv.external_name)] : null
                  ),
                  endpointsTable(sv.endpoints),
                  h('p', { class: 'small routes-using' }, 'Routes: ', routeLinks(sv.routes, 12, hashFor('routes', { q: sv.namespace + ' ' + sv.name })))
                );
              },
              'Services'
            )
          );
        })
      );
    }
  };

  // ---------------------------------------------------------------------
  // Middlewares.

  var middlewaresList = listPage('middlewares');
  var middlewaresPage = {
    title: 'Middlewares',
    enter: middlewaresList.enter,
    load: function () {
      return body('middlewares');
    },
    render: function (view, data) {
      var q = listFilters.middlewares;
      return h(
        'section',
        { class: 'page', id: 'middlewares', key: pageKey(view) },
        pageHead('Middlewares', data ? plural(data.length, 'Middleware') + ' · ' + fmtInt(data.filter(isFailing).length) + ' failing' : null),
        h('div', { class: 'toolbar', key: 'toolbar' }, filterBox('middleware-search', 'Filter Middlewares…', q, function (e) {
          middlewaresList.filter(e.target.value.trim());
        })),
        loadingOr(data, function (list) {
          var items = list.filter(function (m) {
            return matchesWords(m.namespace + '/' + m.name + ' ' + m.reference + ' ' + (m.type || 'missing'), q);
          });
          if (items.length === 0) return h('p', { class: 'empty' }, q ? 'No Middleware matches this filter.' : 'No Middleware objects, and no route references one.');
          return h(
            'div',
            { class: 'table-wrap', key: 'table' },
            h(
              'table',
              { class: 'list', id: 'middlewares-table' },
              h('thead', null, h('tr', null, h('th', null, 'Middleware'), h('th', null, 'Type'), h('th', null, 'Reference'), h('th', null, 'Routes using it'), h('th', null, 'State'))),
              h(
                'tbody',
                null,
                capped(
                  items,
                  function (m) {
                    return h(
                      'tr',
                      { key: m.namespace + '/' + m.name, 'data-middleware': m.namespace + '/' + m.name, class: isFailing(m) ? 'failing' : null },
                      h('td', null, h('strong', null, m.name), h('span', { class: 'muted' }, ' in ' + m.namespace)),
                      h('td', { 'data-field': 'type' }, m.type ? h('code', null, m.type) : h('span', { class: 'bad-text' }, 'missing')),
                      h('td', null, h('code', { class: 'small' }, m.reference)),
                      h('td', null, routeLinks(m.routes, 8, hashFor('routes', { q: m.reference }))),
                      h('td', { class: 'state' }, healthBadge(m.health), reasonsList(m.health.reasons))
                    );
                  },
                  'Middlewares',
                  5
                )
              )
            )
          );
        })
      );
    }
  };

  // ---------------------------------------------------------------------
  // TLS.

  var tlsList = listPage('tls');
  var tlsPage = {
    title: 'TLS',
    enter: tlsList.enter,
    load: function () {
      return body('tls');
    },
    render: function (view, data) {
      var q = listFilters.tls;
      return h(
        'section',
        { class: 'page', id: 'tls', key: pageKey(view) },
        pageHead('TLS certificates', data ? plural(data.length, 'certificate') + ' served · ' + fmtInt(data.filter(isFailing).length) + ' failing' : null),
        h('div', { class: 'toolbar', key: 'toolbar' }, filterBox('tls-search', 'Filter certificates by Secret or host…', q, function (e) {
          tlsList.filter(e.target.value.trim());
        })),
        loadingOr(data, function (list) {
          var items = list.filter(function (c) {
            return matchesWords((c.secret || 'default certificate') + ' ' + c.hosts.join(' ') + ' ' + c.subject, q);
          });
          if (items.length === 0) return h('p', { class: 'empty' }, 'No certificate matches this filter.');
          return h(
            'div',
            { class: 'table-wrap', key: 'table' },
            h(
              'table',
              { class: 'list', id: 'tls-table' },
              h('thead', null, h('tr', null, h('th', null, 'Secret'), h('th', null, 'Hosts'), h('th', null, 'Issuer / subject'), h('th', null, 'Expires'), h('th', null, 'Default'), h('th', null, 'Used by'), h('th', null, 'State'))),
              h(
                'tbody',
                null,
                capped(
                  items,
                  function (c) {
                    var id = c.secret || 'default';
                    var days = c.expires_in_days;
                    return h(
                      'tr',
                      { key: id + (c.default ? ':default' : ''), 'data-cert': id, class: isFailing(c) ? 'failing' : null },
                      h('td', null, c.secret ? h('code', null, c.secret) : h('span', { class: 'muted' }, 'generated default certificate')),
                      h('td', { class: 'chips' }, c.hosts.length ? c.hosts.map(function (x) {
                        return h('span', { class: 'chip' }, x);
                      }) : h('span', { class: 'muted' }, c.default ? 'any unknown or missing SNI' : '–')),
                      h('td', { class: 'small' }, h('div', null, c.issuer), c.subject !== c.issuer ? h('div', { class: 'muted' }, c.subject) : null),
                      h('td', { 'data-field': 'expires', 'data-value': days }, fmtDate(c.not_after), h('div', { class: days < 14 ? 'bad-text small' : 'muted small' }, days < 0 ? 'expired ' + fmtInt(Math.round(-days)) + ' days ago' : 'in ' + (days < 10 ? days.toFixed(1) : fmtInt(Math.round(days))) + ' days')),
                      h('td', null, c.default ? h('span', { class: 'badge info' }, 'default') : ''),
                      h(
                        'td',
                        null,
                        c.used_by.length
                          ? c.used_by.map(function (o) {
                              return h('div', null, h('a', { href: hashFor('routes', { q: (o.namespace || '') + ' ' + o.name }) }, objectName(o)));
                            })
                          : h('span', { class: 'muted' }, '–')
                      ),
                      h('td', { class: 'state' }, healthBadge(c.health), reasonsList(c.health.reasons))
                    );
                  },
                  'certificates',
                  7
                )
              )
            )
          );
        })
      );
    }
  };

  // ---------------------------------------------------------------------
  // Diagnostics.

  var diagnosticsList = listPage('diagnostics');
  var diagnosticsPage = {
    title: 'Diagnostics',
    enter: diagnosticsList.enter,
    load: function () {
      return body('errors');
    },
    render: function (view, data) {
      var q = listFilters.diagnostics;
      var items = data
        ? data.errors.filter(function (d) {
            return matchesWords(objectName(d.object) + ' ' + (d.object.source || '') + ' ' + d.kind + ' ' + d.severity + ' ' + d.message, q);
          })
        : [];
      var errorsCount = data
        ? data.errors.filter(function (d) {
            return d.severity === 'error';
          }).length
        : 0;
      return h(
        'section',
        { class: 'page', id: 'diagnostics-page', key: pageKey(view) },
        pageHead('Diagnostics', data ? plural(data.count, 'diagnostic') + ' · ' + plural(errorsCount, 'error') : null),
        h('p', { class: 'muted small', key: 'intro' }, 'What the last load and compile of the configuration found wrong: unparsable documents, rejected objects, missing references. Objects with an error are left out; the rest keeps serving.'),
        h('div', { class: 'toolbar', key: 'toolbar' }, filterBox('diagnostics-search', 'Filter by object, file, kind or message…', q, function (e) {
          diagnosticsList.filter(e.target.value.trim());
        })),
        h('ul', { id: 'diagnostics', class: 'diagnostics', key: 'list' }, items.slice(0, LIST_CAP * 5).map(diagnosticItem)),
        loadingOr(data, function (d) {
          if (d.count === 0) return h('p', { class: 'empty good-text', key: 'empty' }, 'No diagnostics: every object loaded cleanly.');
          if (items.length === 0) return h('p', { class: 'empty', key: 'empty' }, 'No diagnostic matches this filter.');
          return null;
        })
      );
    }
  };

  // ---------------------------------------------------------------------
  // Gateways (Gateway API): each Gateway with its listeners, each HTTPRoute
  // with its parents, and the conditions sluice writes (or, from files,
  // would write) on them.

  // Conditions whose True is bad news.
  var NEGATIVE_CONDITIONS = { Conflicted: true, OverlappingTLSConfig: true, PartiallyInvalid: true };

  function conditionOk(c) {
    return NEGATIVE_CONDITIONS[c.type] ? c.status !== 'True' : c.status === 'True';
  }

  // "Accepted" when it holds; "ResolvedRefs: BackendNotFound" when it does
  // not; "not Conflicted" for a negative condition that is False.
  function conditionBadge(c) {
    var negative = !!NEGATIVE_CONDITIONS[c.type];
    var ok = conditionOk(c);
    var cls;
    var text;
    if (c.status === 'Unknown') {
      cls = 'warn';
      text = c.type + ': unknown';
    } else if (negative) {
      cls = ok ? 'plain' : c.type === 'Conflicted' ? 'bad' : 'warn';
      text = ok ? 'not ' + c.type : c.type + ': ' + c.reason;
    } else {
      cls = ok ? 'good' : 'bad';
      text = ok ? c.type : c.type + ': ' + c.reason;
    }
    return h(
      'span',
      {
        class: 'badge ' + cls,
        'data-condition': c.type,
        'data-status': c.status,
        'data-reason': c.reason,
        title: c.type + '=' + c.status + ' · ' + c.reason + (c.message ? ': ' + c.message : '')
      },
      text
    );
  }

  // The badges of `conditions`, in `order` first, then the rest.
  function conditionBadges(conditions, order) {
    conditions = conditions || [];
    var shown = [];
    (order || []).forEach(function (t) {
      conditions.forEach(function (c) {
        if (c.type === t) shown.push(c);
      });
    });
    conditions.forEach(function (c) {
      if (shown.indexOf(c) < 0) shown.push(c);
    });
    return h('span', { class: 'conditions' }, shown.map(conditionBadge));
  }

  // Why each condition that is not as it should be, in words.
  function conditionProblems(conditions) {
    var out = (conditions || [])
      .filter(function (c) {
        return !conditionOk(c);
      })
      .map(function (c) {
        return c.type + '=' + c.status + ' (' + c.reason + ')' + (c.message ? ': ' + c.message : '');
      });
    return reasonsList(out);
  }

  function conditionsFailing(conditions, types) {
    return (conditions || []).some(function (c) {
      return (!types || types.indexOf(c.type) >= 0) && !conditionOk(c);
    });
  }

  function gatewayId(g) {
    return g.namespace + '/' + g.name;
  }

  function parentName(p, routeNamespace) {
    var ref = p.parentRef || {};
    return (ref.namespace || routeNamespace) + '/' + ref.name + (ref.sectionName ? ' · ' + ref.sectionName : '') + (ref.port ? ' :' + ref.port : '');
  }

  function listenerRow(l) {
    var failing = !l.programmed || conditionsFailing(l.conditions, ['Accepted', 'Programmed', 'ResolvedRefs', 'Conflicted']);
    return h(
      'tr',
      { key: l.name, 'data-listener': l.name, class: failing ? 'failing' : null },
      h('td', null, h('strong', null, l.name)),
      h('td', null, h('code', null, l.protocol + ' ' + l.port)),
      h('td', { 'data-field': 'entrypoint' }, l.entrypoint ? h('span', { class: 'badge plain' }, l.entrypoint) : h('span', { class: 'muted' }, 'not served')),
      h('td', { 'data-field': 'hostname' }, l.hostname ? h('code', null, l.hostname) : h('span', { class: 'muted' }, '* (any host)')),
      h('td', { class: 'state' }, conditionBadges(l.conditions, ['Accepted', 'Programmed', 'ResolvedRefs', 'Conflicted']), conditionProblems(l.conditions)),
      num('attached-routes', l.attachedRoutes, fmtInt(l.attachedRoutes)),
      h(
        'td',
        null,
        l.routes.length
          ? l.routes.map(function (r) {
              var id = r.namespace + '/' + r.name;
              return h(
                'div',
                { key: id, 'data-attached-route': id },
                h('a', { href: hashFor('gateways', { q: id }) }, id),
                r.hostnames.length ? h('span', { class: 'muted small' }, ' ' + r.hostnames.join(', ')) : null
              );
            })
          : h('span', { class: 'muted' }, 'none'),
        l.certificates.length ? h('div', { class: 'muted small' }, 'certificates: ' + l.certificates.join(', ')) : null
      )
    );
  }

  function gatewayCard(g) {
    var failing = !g.accepted || !g.programmed;
    var addresses = (g.status.addresses || []).map(function (a) {
      return a.value;
    });
    return h(
      'section',
      { class: 'card gateway' + (failing ? ' failing' : ''), key: gatewayId(g), 'data-gateway': gatewayId(g) },
      h(
        'h2',
        null,
        h('span', { 'data-field': 'name' }, gatewayId(g)),
        ' ',
        h('span', { class: 'chip', title: 'gatewayClassName' }, g.class),
        ' ',
        conditionBadges(g.status.conditions, ['Accepted', 'Programmed'])
      ),
      conditionProblems(g.status.conditions),
      h('p', { class: 'muted small' }, addresses.length ? 'Addresses: ' + addresses.join(', ') : 'No address published.'),
      h(
        'div',
        { class: 'table-scroll' },
        h(
          'table',
          { class: 'list compact listeners' },
          h(
            'thead',
            null,
            h(
              'tr',
              null,
              h('th', null, 'Listener'),
              h('th', null, 'Protocol / port'),
              h('th', null, 'Entrypoint'),
              h('th', null, 'Hostname'),
              h('th', null, 'Conditions'),
              h('th', { class: 'num', title: 'status.listeners[].attachedRoutes' }, 'Attached'),
              h('th', null, 'Routes')
            )
          ),
          h('tbody', null, g.listeners.map(listenerRow))
        )
      )
    );
  }

  function httpRouteRow(r) {
    var id = r.namespace + '/' + r.name;
    var failing = r.status.parents.some(function (p) {
      return conditionsFailing(p.conditions, ['Accepted', 'ResolvedRefs']);
    });
    var tableRoutes = [];
    r.rules.forEach(function (rule) {
      tableRoutes = tableRoutes.concat(rule.tableRoutes);
    });
    var dropped = r.rules.filter(function (rule) {
      return rule.dropped;
    });
    return h(
      'tr',
      { key: id, 'data-httproute': id, class: failing ? 'failing' : null },
      h('td', null, h('strong', null, r.name), h('span', { class: 'muted' }, ' in ' + r.namespace)),
      h(
        'td',
        { class: 'chips' },
        r.hostnames.length
          ? r.hostnames.map(function (x) {
              return h('span', { class: 'chip' }, x);
            })
          : h('span', { class: 'muted' }, "the listeners'")
      ),
      h(
        'td',
        { class: 'parents' },
        r.status.parents.map(function (p, i) {
          var name = parentName(p, r.namespace);
          return h(
            'div',
            { key: i + ':' + name, class: 'parent', 'data-parent': name },
            h('a', { href: hashFor('gateways', { q: name.split(' ')[0] }) }, name),
            ' ',
            conditionBadges(p.conditions, ['Accepted', 'ResolvedRefs']),
            conditionProblems(p.conditions)
          );
        })
      ),
      h(
        'td',
        null,
        h('div', { class: 'small' }, plural(r.rules.length, 'rule'), dropped.length ? h('span', { class: 'bad-text' }, ' · ' + fmtInt(dropped.length) + ' dropped') : null),
        reasonsList(
          dropped.map(function (rule) {
            return 'rule ' + rule.index + (rule.name ? ' (' + rule.name + ')' : '') + ': ' + rule.dropped.reason + ': ' + rule.dropped.message;
          })
        ),
        routeLinks(tableRoutes, 6, hashFor('routes', { q: 'httproute ' + r.namespace + ' ' + r.name }))
      )
    );
  }

  function classesCard(classes) {
    if (!classes.length) return null;
    return card(
      'GatewayClasses',
      { key: 'classes', id: 'gateway-classes' },
      h(
        'ul',
        { class: 'plain-list' },
        classes.map(function (c) {
          return h(
            'li',
            { key: c.name, 'data-class': c.name, class: c.accepted ? null : 'failing' },
            h('strong', null, c.name),
            ' ',
            h('code', { class: 'muted small' }, c.controllerName),
            ' ',
            conditionBadges(c.status.conditions, ['Accepted', 'SupportedVersion']),
            conditionProblems(c.status.conditions)
          );
        })
      )
    );
  }

  function policiesCard(policies) {
    if (!policies.length) return null;
    return card(
      'BackendTLSPolicies',
      { key: 'policies', id: 'gateway-policies' },
      h(
        'div',
        { class: 'table-scroll' },
        h(
          'table',
          { class: 'list compact' },
          h('thead', null, h('tr', null, h('th', null, 'Policy'), h('th', null, 'Targets'), h('th', null, 'Gateways using it'))),
          h(
            'tbody',
            null,
            policies.map(function (p) {
              var id = p.namespace + '/' + p.name;
              var failing = p.status.ancestors.some(function (a) {
                return conditionsFailing(a.conditions);
              });
              return h(
                'tr',
                { key: id, 'data-policy': id, class: failing ? 'failing' : null },
                h('td', null, h('strong', null, p.name), h('span', { class: 'muted' }, ' in ' + p.namespace)),
                h(
                  'td',
                  { class: 'chips' },
                  p.targetRefs.map(function (t) {
                    return h('span', { class: 'chip' }, (t.kind || 'Service') + ' ' + t.name + (t.sectionName ? ':' + t.sectionName : ''));
                  })
                ),
                h(
                  'td',
                  null,
                  p.status.ancestors.length
                    ? p.status.ancestors.map(function (a, i) {
                        var name = parentName({ parentRef: a.ancestorRef }, p.namespace);
                        return h('div', { key: i + ':' + name }, name, ' ', conditionBadges(a.conditions, ['Accepted', 'ResolvedRefs']), conditionProblems(a.conditions));
                      })
                    : h('span', { class: 'muted' }, 'none: no accepted route sends to its targets')
                )
              );
            })
          )
        )
      )
    );
  }

  var gatewaysList = listPage('gateways');
  var gatewaysPage = {
    title: 'Gateways',
    enter: gatewaysList.enter,
    load: function () {
      return body('gateway');
    },
    render: function (view, data) {
      var q = listFilters.gateways;
      var subtitle = null;
      if (data) {
        var failingGateways = data.gateways.filter(function (g) {
          return !g.accepted || !g.programmed;
        }).length;
        var failingRoutes = data.routes.filter(function (r) {
          return r.status.parents.some(function (p) {
            return conditionsFailing(p.conditions, ['Accepted', 'ResolvedRefs']);
          });
        }).length;
        subtitle = plural(data.gateways.length, 'Gateway') + ' · ' + plural(data.routes.length, 'HTTPRoute') + ' · ' + fmtInt(failingGateways + failingRoutes) + ' with problems';
      }
      return h(
        'section',
        { class: 'page', id: 'gateways', key: pageKey(view) },
        pageHead('Gateways', subtitle),
        h('p', { class: 'muted small', key: 'intro' }, 'Gateway API objects of the classes whose controllerName is sluice’s, with the status sluice writes on each (when it reads manifest files, the status it would write).'),
        h('div', { class: 'toolbar', key: 'toolbar' }, filterBox('gateway-search', 'Filter Gateways and HTTPRoutes by namespace, name, hostname…', q, function (e) {
          gatewaysList.filter(e.target.value.trim());
        })),
        loadingOr(data, function (d) {
          if (!d.classes.length && !d.gateways.length && !d.routes.length && !d.policies.length) {
            return h('p', { class: 'empty', key: 'empty' }, 'No Gateway API objects for sluice: no GatewayClass names the controller ' + d.controllerName + '.');
          }
          var gateways = d.gateways.filter(function (g) {
            var text = gatewayId(g) + ' ' + g.class;
            g.listeners.forEach(function (l) {
              text += ' ' + l.name + ' ' + (l.hostname || '');
              l.routes.forEach(function (r) {
                text += ' ' + r.namespace + '/' + r.name;
              });
            });
            return matchesWords(text, q);
          });
          var routes = d.routes.filter(function (r) {
            var text = r.namespace + '/' + r.name + ' ' + r.hostnames.join(' ');
            r.status.parents.forEach(function (p) {
              text += ' ' + parentName(p, r.namespace);
            });
            return matchesWords(text, q);
          });
          return [
            classesCard(d.classes),
            h('h2', { class: 'section-title', key: 'gateways-title' }, 'Gateways'),
            gateways.length
              ? h('div', { class: 'cards', key: 'gateway-cards', id: 'gateway-list' }, gateways.map(gatewayCard))
              : h('p', { class: 'empty', key: 'no-gateways' }, q ? 'No Gateway matches this filter.' : 'No Gateway of sluice’s classes.'),
            h('h2', { class: 'section-title', key: 'routes-title' }, 'HTTPRoutes'),
            routes.length
              ? h(
                  'div',
                  { class: 'table-wrap', key: 'routes-table' },
                  h(
                    'table',
                    { class: 'list', id: 'httproutes-table' },
                    h('thead', null, h('tr', null, h('th', null, 'HTTPRoute'), h('th', null, 'Hostnames'), h('th', null, 'Parents (conditions sluice writes)'), h('th', null, 'Rules and routes'))),
                    h('tbody', null, routes.map(httpRouteRow))
                  )
                )
              : h('p', { class: 'empty', key: 'no-routes' }, q ? 'No HTTPRoute matches this filter.' : 'No HTTPRoute names a Gateway of sluice’s.'),
            policiesCard(d.policies)
          ];
        })
      );
    }
  };

  // ---------------------------------------------------------------------
  // Route tester.

  function testerParams(form) {
    var params = new URLSearchParams();
    params.set('host', form.host);
    params.set('path', form.path);
    if (form.method && form.method !== 'GET') params.set('method', form.method);
    if (form.entrypoint && form.entrypoint !== 'web') params.set('entrypoint', form.entrypoint);
    if (form.query) params.set('query', form.query);
    form.headers.forEach(function (line) {
      params.append('header', line);
    });
    return params;
  }

  function runTest(form) {
    var seq = ++tester.seq;
    tester.query = form;
    tester.pending = true;
    tester.error = null;
    render();
    var query = testerParams(form);
    var hash = new URLSearchParams();
    hash.set('host', form.host);
    hash.set('path', form.path);
    if (form.method !== 'GET') hash.set('method', form.method);
    if (form.entrypoint !== 'web') hash.set('entrypoint', form.entrypoint);
    if (form.query) hash.set('query', form.query);
    form.headers.forEach(function (line) {
      hash.append('header', line);
    });
    replaceHash('#/tester?' + hash.toString());
    api('match?' + query.toString(), [400, 404]).then(
      function (r) {
        if (seq !== tester.seq) return;
        tester.pending = false;
        tester.status = r.status;
        tester.result = r.body;
        state.error = null;
        state.lastOk = new Date();
        render();
      },
      function (e) {
        if (seq !== tester.seq) return;
        tester.pending = false;
        tester.result = null;
        tester.error = e;
        render();
      }
    );
  }

  function readTesterForm() {
    function val(id) {
      var el = document.getElementById(id);
      return el ? el.value : '';
    }
    return {
      host: val('tester-host').trim(),
      path: val('tester-path').trim() || '/',
      method: val('tester-method') || 'GET',
      entrypoint: val('tester-entrypoint') || 'web',
      query: val('tester-query').trim().replace(/^\?/, ''),
      headers: val('tester-headers')
        .split('\n')
        .map(function (l) {
          return l.trim();
        })
        .filter(function (l) {
          return l.indexOf(':') > 0;
        })
    };
  }

  function testerResult() {
    if (tester.pending && !tester.result) return h('div', { id: 'tester-result', class: 'card pending' }, h('p', { class: 'muted' }, 'testing…'));
    if (tester.error) return h('div', { id: 'tester-result', class: 'card error' }, h('p', { class: 'bad-text' }, 'The test could not run: ' + tester.error.message));
    var r = tester.result;
    if (!r) return h('div', { id: 'tester-result', class: 'card empty-result' }, h('p', { class: 'muted' }, 'Enter a host and a path to see which route a request would take, and why.'));
    if (tester.status === 400) return h('div', { id: 'tester-result', class: 'card error', 'data-status': 400 }, h('p', { class: 'bad-text' }, r.error || 'bad request'));
    if (!r.matched) {
      return h(
        'div',
        { id: 'tester-result', class: 'card no-match failing', 'data-status': 404, 'data-matched': 'false' },
        h('h2', { 'data-field': 'status' }, 'No route (404)'),
        h('p', { 'data-field': 'reason' }, r.reason),
        dl([
          ['Host', r.host],
          ['Path', h('code', null, r.path)],
          r.match_path !== r.path ? ['Matched as', h('code', null, r.match_path)] : null,
          ['Entrypoint', r.entrypoint]
        ])
      );
    }
    var failing = isFailing(r);
    var rule = r.rule || {};
    var hr = r.http_route;
    var headersNote = null;
    if (tester.query && tester.query.headers.length) {
      headersNote = ['Headers', r.headers_considered ? tester.query.headers.join(', ') : 'given, but Ingress routing does not look at headers', 'headers'];
    }
    return h(
      'div',
      { id: 'tester-result', class: 'card match' + (failing ? ' failing' : ''), 'data-status': 200, 'data-matched': 'true', 'data-route': r.route },
      h('h2', null, 'Route ', h('a', { href: routeHref(r.route), 'data-field': 'route' }, r.route), ' ', healthBadge(r.health)),
      failing ? h('div', { class: 'alert failing' }, h('strong', null, 'This route is failing:'), reasonsList(r.health.reasons)) : null,
      h('p', { class: 'reason', 'data-field': 'reason' }, r.reason),
      dl([
        [r.kind === 'HTTPRoute' ? 'HTTPRoute' : 'Ingress', hr ? h('a', { href: hashFor('gateways', { q: hr.namespace + '/' + hr.name }) }, objectName(r.ingress)) : objectName(r.ingress), 'ingress'],
        ['Host match', r.host_match, 'host-match'],
        ['Rule', [rule.host || '* (any host)', ' ', rule.path ? h('code', null, rule.path) : 'default backend', rule.path_type ? ' (' + rule.path_type + ')' : ''], 'rule'],
        hr ? ['HTTPRoute rule', ['rule ' + hr.rule_index, hr.rule_name ? ' (' + hr.rule_name + ')' : '', ', match ' + hr.match_index], 'http-route-rule'] : null,
        hr ? ['Match conditions', matchConditions(hr.match), 'match-conditions'] : null,
        hr
          ? ['Parents', hr.parents.length ? hr.parents.map(function (p, i) {
              return h('div', { key: i }, parentName(p, hr.namespace), ' ', conditionBadges(p.conditions, ['Accepted', 'ResolvedRefs']));
            }) : h('span', { class: 'muted' }, 'none'), 'parents']
          : null,
        r.priority !== undefined ? ['Priority', String(r.priority), 'priority'] : null,
        ['Request', [r.method, ' ', h('code', null, r.path), r.match_path !== r.path ? [' → matched as ', h('code', null, r.match_path)] : null, ' on ', r.entrypoint]],
        ['Middlewares', r.middlewares.length ? h('ol', { class: 'inline-list' }, r.middlewares.map(function (m) {
          return h('li', null, h('a', { href: hashFor('middlewares', { q: m }) }, m));
        })) : 'none', 'middlewares'],
        ['Service', r.service ? h('a', { href: hashFor('services', { q: r.service }) }, r.service) : 'none', 'service'],
        ['Endpoints', r.endpoints.length ? r.endpoints.join(', ') : h('span', { class: 'bad-text' }, 'none ready (the request would get 503)'), 'endpoints'],
        ['Redirect to HTTPS', r.redirect_https ? 'yes: the request would get a redirect' : 'no', 'redirect-https'],
        r.query ? ['Query', h('code', null, r.query), 'query'] : null,
        headersNote
      ])
    );
  }

  // An HTTPRoute match's method, header and query conditions, in words.
  function matchConditions(m) {
    var out = [];
    if (m.method) out.push('method ' + m.method);
    (m.headers || []).forEach(function (x) {
      out.push('header ' + x.name + (x.type === 'RegularExpression' ? ' ~ ' : ' = ') + x.value);
    });
    (m.queryParams || []).forEach(function (x) {
      out.push('query ' + x.name + (x.type === 'RegularExpression' ? ' ~ ' : ' = ') + x.value);
    });
    if (out.length === 0) return h('span', { class: 'muted' }, 'none (host and path only)');
    return h('ul', { class: 'inline-list' }, out.map(function (t) {
      return h('li', null, h('code', null, t));
    }));
  }

  var testerPage = {
    title: 'Route tester',
    enter: function (view) {
      var host = view.query.get('host');
      var path = view.query.get('path');
      if (host !== null || path !== null) {
        tester.query = {
          host: host || '',
          path: path || '/',
          method: view.query.get('method') || 'GET',
          entrypoint: view.query.get('entrypoint') || 'web',
          query: view.query.get('query') || '',
          headers: view.query.getAll('header')
        };
        tester.result = null;
        tester.error = null;
        if (host) setTimeout(function () {
          runTest(tester.query);
        }, 0);
      }
    },
    render: function (view) {
      var q = tester.query || { host: '', path: '/', method: 'GET', entrypoint: 'web', query: '', headers: [] };
      function option(value, selected) {
        return h('option', { value: value, selected: value === selected }, value);
      }
      return h(
        'section',
        { class: 'page', id: 'tester', key: pageKey(view) },
        pageHead('Route tester', 'which route a request would take, found with the lookup the data plane runs'),
        h(
          'form',
          {
            id: 'tester-form',
            class: 'card tester-form',
            key: 'form',
            autocomplete: 'off',
            on: {
              submit: function (e) {
                e.preventDefault();
                var form = readTesterForm();
                if (!form.host) {
                  document.getElementById('tester-host').focus();
                  return;
                }
                runTest(form);
              }
            }
          },
          h(
            'div',
            { class: 'form-row' },
            h('label', null, 'Host', h('input', { id: 'tester-host', name: 'host', type: 'text', placeholder: 'demo.localhost', required: true, spellcheck: 'false', props: { value: q.host } })),
            h('label', { class: 'grow' }, 'Path', h('input', { id: 'tester-path', name: 'path', type: 'text', placeholder: '/api/users', spellcheck: 'false', props: { value: q.path } })),
            h('label', null, 'Method', h('select', { id: 'tester-method', name: 'method' }, ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'].map(function (m) {
              return option(m, q.method);
            }))),
            h('label', null, 'Entrypoint', h('select', { id: 'tester-entrypoint', name: 'entrypoint' }, option('web', q.entrypoint), option('websecure', q.entrypoint)))
          ),
          h('label', { class: 'block' }, 'Query (optional, as after “?”: HTTPRoute matches may read its parameters)', h('input', { id: 'tester-query', name: 'query', type: 'text', placeholder: 'page=2&sort=asc', spellcheck: 'false', props: { value: q.query || '' } })),
          h('label', { class: 'block' }, 'Headers (optional, one “Name: value” per line; HTTPRoute matches may read them)', h('textarea', { id: 'tester-headers', name: 'headers', rows: 2, spellcheck: 'false', placeholder: 'Accept: application/json', props: { value: q.headers.join('\n') } })),
          h('div', { class: 'form-actions' }, h('button', { id: 'tester-submit', type: 'submit', class: 'primary' }, 'Test'), h('span', { class: 'muted small' }, 'GET /api/match?host=…&path=…[&method=…][&query=…][&header=Name:value]'))
        ),
        testerResult()
      );
    }
  };

  var pages = {
    overview: overviewPage,
    routes: routesPage,
    route: routePage,
    gateways: gatewaysPage,
    services: servicesPage,
    middlewares: middlewaresPage,
    tls: tlsPage,
    diagnostics: diagnosticsPage,
    tester: testerPage
  };

  // "/" focuses the page's search box.
  document.addEventListener('keydown', function (e) {
    if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT')) return;
    var box = document.querySelector('#app input[type=search]');
    if (box) {
      e.preventDefault();
      box.focus();
    }
  });

  window.addEventListener('hashchange', onRoute);
  if (!window.location.hash || window.location.hash === '#' || window.location.hash === '#/') {
    history.replaceState(null, '', '#/overview');
  }
  onRoute();
})();
