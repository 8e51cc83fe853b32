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

  /* Calls the REST API; failures carry the API's text/plain message. */
  async function api(method, path, body) {
    let response;
    try {
      response = await fetch(path, {
        method,
        credentials: 'same-origin',
        headers: {'Content-Type': 'application/json', Accept: 'application/json',
          'X-XSRFToken': xsrfToken()},
        body: body === undefined ? undefined : JSON.stringify(body),
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
    return {ok: true, status: response.status, body: json};
  }

  function showMessage(text, kind) {
    const box = document.querySelector('[data-message]');
    if (!box) return;
    box.textContent = text;
    box.className = 'message message-' + (kind || 'error');
    box.hidden = !text;
  }

  function shortTime(iso) { return iso ? iso.slice(0, 19).replace('T', ' ') : ''; }

  /* Fills a cell with a <time> (or a dash), as the templates' time() macro does. */
  function setTime(cell, iso) {
    const current = cell.querySelector('time');
    if (current && current.getAttribute('datetime') === iso) return false;
    cell.textContent = '';
    if (iso) {
      const t = document.createElement('time');
      t.setAttribute('datetime', iso);
      t.textContent = shortTime(iso);
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
  function flash(el) {
    if (typeof el.animate !== 'function' ||
        window.matchMedia('(prefers-reduced-motion: reduce)').matches) return;
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

  window.Jobdeck = {api, showMessage, shortTime, setTime, setStatus, setActions, flash, live,
    pageParams, CANCELABLE, REQUEUEABLE};
}());
