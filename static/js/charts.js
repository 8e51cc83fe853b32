/* The overview's time charts: finished jobs per interval (completed and failed, stacked), queue
   depth and running jobs, from GET /jobs/series/?range=1h|24h|7d. Hand-written SVG sized to the
   card's width in pixels (text keeps its size at 360 px); redrawn on resize, on a range change
   and after the overview's live refresh (at most every 5 s). */
(function () {
  'use strict';
  const J = window.Jobdeck;
  const section = document.querySelector('[data-charts]');
  if (!section) return;
  const SVG = 'http://www.w3.org/2000/svg';
  const HEIGHT = 150;
  const PAD = {left: 44, right: 8, top: 8, bottom: 34};
  const AT_MOST_MS = 5000;
  const EVERY_MS = 60000;
  const RANGE_WORDS = {'1h': 'the last hour', '24h': 'the last 24 hours', '7d': 'the last 7 days'};
  const state = section.querySelector('[data-charts-state]');
  const buttons = Array.from(section.querySelectorAll('[data-range]'));
  let range = buttons[0].dataset.range;
  let series = null;
  let asked = 0;
  let last = 0;
  let queued = null;

  function node(name, attrs, text) {
    const el = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function intervalWords(seconds) {
    return seconds < 3600 ? (seconds / 60) + ' min' : (seconds / 3600) + ' h';
  }

  function tickText(iso) {
    const text = iso.slice(0, 16).replace('T', ' ');
    return range === '7d' ? text.slice(5) : text.slice(11);
  }

  /* An empty SVG with both axes, their labels, the time ticks and the y scale up to `peak`;
     returns it with `x(i)` (left edge of interval i), `slot` and `y(value)`. */
  function frame(width, peak, yLabel) {
    const points = series.points;
    const svg = node('svg', {width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: 'img'});
    const plotW = width - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const slot = plotW / points.length;
    const chart = {svg, slot, x: (i) => PAD.left + i * slot,
      y: (value) => PAD.top + plotH - value / peak * plotH, bottom: PAD.top + plotH};
    svg.append(node('line', {class: 'axis', x1: PAD.left, y1: chart.bottom, x2: width - PAD.right, y2: chart.bottom}));
    svg.append(node('line', {class: 'axis', x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: chart.bottom}));
    svg.append(node('text', {class: 'tick', x: PAD.left - 4, y: PAD.top + 9, 'text-anchor': 'end'}, peak));
    svg.append(node('text', {class: 'tick', x: PAD.left - 4, y: chart.bottom, 'text-anchor': 'end'}, 0));
    svg.append(node('text', {class: 'tick', x: PAD.left, y: chart.bottom + 13}, tickText(points[0].time)));
    svg.append(node('text', {class: 'tick', x: width - PAD.right, y: chart.bottom + 13, 'text-anchor': 'end'},
      tickText(points[points.length - 1].time)));
    svg.append(node('text', {class: 'axis-label', x: PAD.left + plotW / 2, y: HEIGHT - 3, 'text-anchor': 'middle'},
      'time (UTC), ' + intervalWords(series.interval_seconds) + ' intervals'));
    svg.append(node('text', {class: 'axis-label', x: 0, y: 0, 'text-anchor': 'middle',
      transform: `translate(12 ${PAD.top + plotH / 2}) rotate(-90)`}, yLabel));
    return chart;
  }

  function drawFinished(figure, width) {
    const points = series.points;
    const completed = points.reduce((n, p) => n + p.completed, 0);
    const failed = points.reduce((n, p) => n + p.failed, 0);
    figure.querySelector('[data-chart-summary]').textContent = `${completed} completed, ${failed} failed`;
    const body = figure.querySelector('[data-chart-body]');
    figure.querySelector('.legend').hidden = !completed && !failed;
    if (!completed && !failed) {
      body.replaceChildren(emptyNote(`No job finished in ${RANGE_WORDS[range]}.`));
      return;
    }
    const peak = Math.max(1, ...points.map((p) => p.completed + p.failed));
    const chart = frame(width, peak, 'jobs per ' + intervalWords(series.interval_seconds));
    const barW = Math.max(1, chart.slot - (chart.slot > 4 ? 2 : 0));
    points.forEach(function (p, i) {
      const g = node('g', {'data-point': '', 'data-time': p.time, 'data-completed': p.completed, 'data-failed': p.failed});
      g.append(node('title', {}, `${tickText(p.time)} UTC: ${p.completed} completed, ${p.failed} failed`));
      const x = chart.x(i) + (chart.slot - barW) / 2;
      const doneTop = chart.y(p.completed);
      if (p.completed) {
        g.append(node('rect', {class: 'bar-completed', x, y: doneTop, width: barW, height: chart.bottom - doneTop}));
      }
      if (p.failed) {
        const top = chart.y(p.completed + p.failed);
        g.append(node('rect', {class: 'bar-failed', x, y: top, width: barW, height: doneTop - top}));
      }
      chart.svg.append(g);
    });
    body.replaceChildren(chart.svg);
  }

  function drawLine(figure, width, field, words) {
    const points = series.points;
    const sampled = points.filter((p) => p[field] !== null);
    const now = points[points.length - 1][field];
    const most = Math.max(0, ...sampled.map((p) => p[field]));
    figure.querySelector('[data-chart-summary]').textContent = `now ${now}, at most ${most}`;
    const body = figure.querySelector('[data-chart-body]');
    if (!most) {
      body.replaceChildren(emptyNote(`No job was ${words} in ${RANGE_WORDS[range]}.`));
      return;
    }
    const chart = frame(width, most, `jobs ${words} (most)`);
    let run = [];
    const flush = function () {
      if (run.length) chart.svg.append(node('polyline', {class: 'line-' + field, points: run.join(' ')}));
      run = [];
    };
    points.forEach(function (p, i) {
      if (p[field] === null) { flush(); return; }
      const x = chart.x(i) + chart.slot / 2;
      const y = chart.y(p[field]);
      run.push(`${x},${y}`);
      const dot = node('circle', {class: 'dot-' + field, cx: x, cy: y, r: 3, 'data-point': '',
        'data-time': p.time, 'data-value': p[field]});
      dot.append(node('title', {}, `${tickText(p.time)} UTC: at most ${p[field]} ${words}`));
      chart.svg.append(dot);
    });
    flush();
    body.replaceChildren(chart.svg);
  }

  function emptyNote(text) {
    const p = document.createElement('p');
    p.className = 'subtle';
    p.dataset.chartEmpty = '';
    p.textContent = text;
    return p;
  }

  function draw() {
    if (!series) return;
    const width = Math.floor(section.querySelector('[data-chart-body]').clientWidth);
    if (width < 100) return;
    drawFinished(section.querySelector('[data-chart="finished"]'), width);
    drawLine(section.querySelector('[data-chart="queued"]'), width, 'queued', 'queued');
    drawLine(section.querySelector('[data-chart="running"]'), width, 'running', 'running');
    section.dataset.drawn = series.range;
  }

  async function load() {
    queued = null;
    last = Date.now();
    const mine = ++asked;
    const result = await J.api('GET', '/jobs/series/?range=' + encodeURIComponent(range));
    if (mine !== asked) return;  // a newer range was asked for meanwhile
    if (!result.ok) {
      state.hidden = false;
      state.textContent = 'The charts could not be loaded: ' + result.message;
      return;
    }
    series = result.body;
    state.hidden = true;
    draw();
  }

  function soon() {
    if (queued !== null) return;
    queued = window.setTimeout(load, Math.max(0, last + AT_MOST_MS - Date.now()));
  }

  function choose(button) {
    range = button.dataset.range;
    for (const other of buttons) other.setAttribute('aria-pressed', String(other === button));
  }

  for (const button of buttons) {
    button.addEventListener('click', function () {
      choose(button);
      const url = new URL(window.location.href);
      url.searchParams.set('range', range);
      window.history.replaceState(null, '', url);
      delete section.dataset.drawn;
      load();
    });
  }
  // The range is kept in the page's URL (?range=), so a reload or a shared link shows it.
  const kept = buttons.find((b) => b.dataset.range === new URLSearchParams(window.location.search).get('range'));
  if (kept) choose(kept);
  document.addEventListener('jobdeck:refreshed', soon);
  window.setInterval(soon, EVERY_MS);
  new ResizeObserver(draw).observe(section);
  load();
}());
