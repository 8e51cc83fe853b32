/* Jobdeck dashboards: API calls, messages, status badges, the live indicator and the
   one-click actions (cancel, requeue, pause a job type). Plain JS, no framework. */
(function () {
  'use strict';

  const CANCELABLE = ['PENDING', 'BLOCKED', 'QUEUED', 'RUNNING', 'FAILED'];
  const REQUEUEABLE = ['FAILED', 'CANCELED'];
  const LIVE_LABELS = {
    connecting: 'Connecting…', live: 'Live', paused: 'Paused', offline: 'Offline',
    unavailable: 'Live updates unavailable',
  };

  /* The page's XSRF token (a meta tag): changes made with the session cookie must carry it. */
  function xsrfToken() {
    const meta = document.querySelector('meta[name="xsrf-token"]');
    return meta ? meta.content : '';
  }

  /* Calls the REST API with a JSON body, or a FormData one (a multipart upload); failures
     carry the API's text/plain message. */
  async function api(method, path, body) {
    const form = body instanceof FormData;
    const headers = {Accept: 'application/json', 'X-XSRFToken': xsrfToken()};
    if (!form) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(path, {
        method,
        credentials: 'same-origin',
        headers: headers,
        body: body === undefined || form ? body : JSON.stringify(body),
      });
    } catch (err) {
      return {ok: false, status: 0, message: 'The server could not be reached (' + err.message + ').'};
    }
    const text = await response.text();
    if (!response.ok) {
      return {ok: false, status: response.status,
        message: text.trim() || response.status + ' ' + response.statusText};
    }
    let json = null;
    try { json = JSON.parse(text); } catch (err) { json = null; }
    return {ok: true, status: response.status, body: json, headers: response.headers};
  }

  function showMessage(text, kind) {
    const box = document.querySelector('[data-message]');
    if (!box) return;
    box.textContent = text;
    box.className = 'message message-' + (kind || 'error');
    box.hidden = !text;
  }

  function shortTime(iso) { return iso ? iso.slice(0, 19).replace('T', ' ') : ''; }

  /* Time display, chosen by the user (the footer's select) and remembered in localStorage:
     'utc' (as the server renders), 'local' (this browser's zone) or 'relative' ("3 min ago");
     the other forms are on hover. */
  const TIME_MODES = ['utc', 'local', 'relative'];
  const TIME_KEY = 'jobdeck.timeMode';
  let chosenMode = null;  // read from localStorage once: live updates render many times
  function timeMode() {
    if (chosenMode === null) {
      let mode = null;
      try { mode = window.localStorage.getItem(TIME_KEY); } catch (err) { mode = null; }
      chosenMode = TIME_MODES.includes(mode) ? mode : 'utc';
    }
    return chosenMode;
  }
  function pad(n) { return String(n).padStart(2, '0'); }
  function localTime(date) {
    return date.getFullYear() + '-' + pad(date.getMonth() + 1) + '-' + pad(date.getDate()) + ' ' +
      pad(date.getHours()) + ':' + pad(date.getMinutes()) + ':' + pad(date.getSeconds());
  }
  function relativeTime(date, now) {
    const seconds = Math.round((now - date.getTime()) / 1000);
    const future = seconds < 0;
    const s = Math.abs(seconds);
    let text;
    if (s < 45) text = s + ' s';
    else if (s < 3600) text = Math.round(s / 60) + ' min';
    else if (s < 86400) text = Math.round(s / 3600) + ' h';
    else text = Math.round(s / 86400) + ' d';
    return future ? 'in ' + text : text + ' ago';
  }
  function renderTime(t) {
    const iso = t.getAttribute('datetime');
    const date = new Date(iso);
    if (!iso || isNaN(date.getTime())) return;
    const mode = timeMode();
    const utc = shortTime(iso) + ' UTC';
    let text;
    let title;
    if (mode === 'local') {
      text = localTime(date);
      title = utc;
    } else if (mode === 'relative') {
      text = relativeTime(date, serverNow());
      title = localTime(date) + ' local · ' + utc;
    } else {
      text = shortTime(iso);
      title = localTime(date) + ' local';
    }
    // Written only when changed: relative times are re-rendered every second.
    if (t.textContent !== text) t.textContent = text;
    if (t.title !== title) t.title = title;
  }
  function renderTimes(scope) {
    for (const t of (scope || document).querySelectorAll('time[datetime]')) renderTime(t);
  }
  const TIME_NOTES = {utc: 'Times are UTC.', local: 'Times are local; UTC on hover.',
    relative: 'Times are relative; local and UTC on hover.'};
  function setTimeMode(mode) {
    try { window.localStorage.setItem(TIME_KEY, mode); } catch (err) { /* private mode */ }
    chosenMode = null;
    applyTimeMode();
  }
  function applyTimeMode() {
    const mode = timeMode();
    const select = document.querySelector('[data-time-mode]');
    if (select) select.value = mode;
    const note = document.querySelector('[data-time-note]');
    if (note) note.textContent = TIME_NOTES[mode];
    renderTimes(document);
  }

  /* The server's clock minus this one (from the page's render time), for live durations. */
  const rendered = Date.parse(document.body.dataset.rendered || '');
  const clockOffset = isNaN(rendered) ? 0 : rendered - Date.now();
  function serverNow() { return Date.now() + clockOffset; }

  /* `12.3 s`, `2 min 05 s`, `1 h 02 min`: handlers/dashboard.py's elapsed_text. */
  function duration(seconds) {
    if (seconds < 60) return Math.max(0, seconds).toFixed(1) + ' s';
    const whole = Math.floor(seconds);
    if (whole < 3600) return Math.floor(whole / 60) + ' min ' + pad(whole % 60) + ' s';
    return Math.floor(whole / 3600) + ' h ' + pad(Math.floor(whole % 3600 / 60)) + ' min';
  }

  /* A running job's elapsed seconds against its timeout (a <progress>). */
  function setTimeoutBar(bar, elapsed) {
    const timeout = Number(bar.max);
    bar.value = Math.min(elapsed, timeout);
    const text = elapsed + ' s of the ' + timeout + ' s timeout';
    bar.setAttribute('aria-label', text);
    bar.title = text;
    bar.classList.toggle('timeout-near', elapsed >= timeout * 0.9);
  }

  /* Running durations and timeout bars tick on; relative times follow the clock. */
  function tick() {
    if (document.hidden) return;
    const now = serverNow();
    for (const span of document.querySelectorAll('[data-duration][data-since]')) {
      const seconds = (now - Date.parse(span.dataset.since)) / 1000;
      span.textContent = duration(seconds);
      const bar = span.parentElement.querySelector('[data-timeout-bar]');
      if (bar) setTimeoutBar(bar, Math.round(seconds));
    }
    if (timeMode() === 'relative') renderTimes(document);
  }
  window.setInterval(tick, 1000);

  /* Fills a cell with a <time> (or a dash), as the templates' time() macro does. */
  function setTime(cell, iso) {
    const current = cell.querySelector('time');
    if (current && current.getAttribute('datetime') === iso) return false;
    if (current && iso) {
      current.setAttribute('datetime', iso);
      renderTime(current);
      return true;
    }
    cell.textContent = '';
    if (iso) {
      const t = document.createElement('time');
      t.setAttribute('datetime', iso);
      t.textContent = shortTime(iso);
      renderTime(t);
      cell.appendChild(t);
    } else {
      const dash = document.createElement('span');
      dash.className = 'none';
      dash.textContent = '—';
      cell.appendChild(dash);
    }
    return true;
  }

  function setStatus(badge, status) {
    if (badge.textContent === status) return false;
    badge.className = 'status status-' + status.toLowerCase();
    badge.textContent = status;
    return true;
  }

  /* Highlights a changed element; the Web Animations API restarts it without forcing layout. */
  const reducedMotion = window.matchMedia('(prefers-reduced-motion: reduce)');
  function flash(el) {
    if (typeof el.animate !== 'function' || reducedMotion.matches) return;
    el.animate([{backgroundColor: 'var(--flash)'}, {backgroundColor: 'transparent'}],
      {duration: 1200, easing: 'ease-out'});
  }

  /* Shows Cancel/Requeue only where the API would accept them. */
  function setActions(scope, status) {
    for (const button of scope.querySelectorAll('[data-action="cancel"]')) {
      button.hidden = !CANCELABLE.includes(status);
    }
    for (const button of scope.querySelectorAll('[data-action="requeue"]')) {
      button.hidden = !REQUEUEABLE.includes(status);
    }
  }

  /* Connects window.JobdeckLive (static/js/live.js, which also pauses while the tab is hidden
     and catches up when shown) and drives the indicator and pause toggle. Returns
     {isPaused()}; without the live client the indicator says so. */
  function live(options) {
    const box = document.querySelector('[data-live]');
    const label = box && box.querySelector('[data-live-text]');
    const toggle = box && box.querySelector('[data-live-toggle]');
    let userPaused = false;
    let connection = null;
    function setState(state, detail) {
      if (!box) return;
      box.dataset.state = state;
      label.textContent = (LIVE_LABELS[state] || state) + (detail ? ' (' + detail + ')' : '');
      if (options.onState) options.onState(state);
    }
    const handle = {isPaused: () => userPaused || document.hidden, connected: () => !!connection};
    if (!window.JobdeckLive || typeof window.JobdeckLive.connect !== 'function') {
      setState('unavailable', options.fallback || '');
      if (toggle) toggle.hidden = true;
      return handle;
    }
    try {
      connection = window.JobdeckLive.connect({
        params: options.params || {}, started: options.started,
        onUpdates: options.onUpdates, onState: setState,
      });
    } catch (err) {
      setState('unavailable', err.message);
      if (toggle) toggle.hidden = true;
      return handle;
    }
    if (toggle) {
      toggle.addEventListener('click', function () {
        userPaused = !userPaused;
        toggle.setAttribute('aria-pressed', String(userPaused));
        toggle.textContent = userPaused ? 'Resume' : 'Pause';
        if (userPaused) { connection.pause(); setState('paused'); } else { connection.resume(); }
      });
    }
    window.addEventListener('pagehide', function () { connection.close(); });
    return handle;
  }

  /* Query arguments of this page as {name: [values]}, without the ones named in `skip`. */
  function pageParams(skip) {
    const params = {};
    for (const [key, value] of new URLSearchParams(window.location.search)) {
      if (value === '' || skip.includes(key)) continue;
      (params[key] = params[key] || []).push(value);
    }
    return params;
  }

  async function runAction(button) {
    const action = button.dataset.action;
    let result;
    let done;
    if (action === 'cancel') {
      const id = button.dataset.jobId;
      if (!window.confirm('Cancel job ' + id + '? Its running execution is stopped.')) return;
      button.disabled = true;
      result = await api('PATCH', '/jobs/' + id + '/', {status: 'CANCELED'});
      done = 'Job ' + id + ' canceled.';
    } else if (action === 'requeue') {
      const id = Number(button.dataset.jobId);
      button.disabled = true;
      result = await api('POST', '/queue/requeue-jobs/', {job_ids: [id]});
      done = 'Job ' + id + ' requeued.';
    } else if (action === 'pause-type') {
      const pause = button.dataset.paused !== 'true';
      button.disabled = true;
      result = await api('PATCH', '/job-types/' + button.dataset.jobTypeId + '/', {is_paused: pause});
      done = 'Job type ' + (pause ? 'paused.' : 'resumed.');
    } else {
      return;
    }
    button.disabled = false;
    if (!result.ok) {
      showMessage(result.message, 'error');
      return;
    }
    showMessage(done, 'ok');
    if (action === 'pause-type') {
      applyJobType(result.body);
    } else {
      const rows = action === 'requeue' ? result.body.results : [result.body];
      document.dispatchEvent(new CustomEvent('jobdeck:jobs', {detail: rows}));
    }
  }

  function applyJobType(jobType) {
    for (const scope of document.querySelectorAll('[data-job-type-id="' + jobType.id + '"]')) {
      const state = scope.querySelector('[data-paused-text]');
      if (state) state.textContent = jobType.is_paused ? 'Paused' : 'Active';
      const button = scope.querySelector('[data-action="pause-type"]');
      if (button) {
        button.dataset.paused = String(jobType.is_paused);
        button.textContent = jobType.is_paused ? 'Resume' : 'Pause';
        button.setAttribute('aria-label', (jobType.is_paused ? 'Resume' : 'Pause') +
          ' job type ' + jobType.name + ' ' + jobType.version);
      }
    }
  }

  document.addEventListener('click', function (event) {
    const button = event.target.closest('button[data-action]');
    if (button && !button.disabled) runAction(button);
  });

  /* Keyboard: `/` focuses the search, `j`/`k` move between rows, Enter opens the current row's
     job, `?` lists the shortcuts, Escape closes that list. Not while typing in a field. */
  function rows() { return Array.from(document.querySelectorAll('table.jobs tbody tr')); }
  function moveRow(step) {
    const all = rows();
    if (!all.length) return;
    const current = document.querySelector('tr.row-current');
    let i = current ? all.indexOf(current) + step : (step > 0 ? 0 : all.length - 1);
    i = Math.max(0, Math.min(all.length - 1, i));
    if (current) { current.classList.remove('row-current'); current.removeAttribute('aria-current'); }
    all[i].classList.add('row-current');
    all[i].setAttribute('aria-current', 'true');
    all[i].scrollIntoView({block: 'nearest'});
  }
  document.addEventListener('keydown', function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    const target = event.target;
    const typing = target.closest && target.closest('input, textarea, select, [contenteditable]');
    const help = document.querySelector('[data-shortcuts]');
    if (event.key === 'Escape' && help && !help.hidden) { help.hidden = true; return; }
    if (typing) return;
    if (event.key === '/') {
      const search = document.querySelector('[data-search]');
      if (search) {
        event.preventDefault();
        const toggle = document.querySelector('[data-filters-toggle]');
        if (search.offsetParent === null && toggle) toggle.click();
        search.focus();
        search.select();
      }
    } else if (event.key === 'j' || event.key === 'k') {
      moveRow(event.key === 'j' ? 1 : -1);
    } else if (event.key === 'Enter' && !target.closest('a, button')) {
      const current = document.querySelector('tr.row-current');
      const link = current && current.querySelector('a[href^="/dashboard/jobs/"]');
      if (link) { event.preventDefault(); window.location.assign(link.href); }
    } else if (event.key === '?') {
      if (help) { help.hidden = !help.hidden; if (!help.hidden) help.querySelector('button').focus(); }
    }
  });
  document.addEventListener('click', function (event) {
    if (event.target.closest('[data-shortcuts-close]')) {
      document.querySelector('[data-shortcuts]').hidden = true;
    }
  });

  // A choice made in another tab applies here too.
  window.addEventListener('storage', function (event) {
    if (event.key === TIME_KEY) { chosenMode = null; applyTimeMode(); }
  });
  const modeSelect = document.querySelector('[data-time-mode]');
  if (modeSelect) modeSelect.addEventListener('change', function () { setTimeMode(modeSelect.value); });
  applyTimeMode();

  window.Jobdeck = {api, showMessage, shortTime, setTime, setStatus, setActions, flash, live,
    pageParams, duration, setTimeoutBar, renderTimes, serverNow, CANCELABLE, REQUEUEABLE};
}());
