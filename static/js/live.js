/* Jobdeck live updates: a small client for ws://HOST/ws/jobs/updates/ (no framework).

   const live = JobdeckLive.connect({
     params: {status: ['RUNNING'], job_type_name: 'ingest'},  // the /jobs/updates/ filters
     started: '2026-01-01T00:00:00.000Z',  // optional: catch up from then (datetime or duration)
     onUpdates(results) {},                // rows shaped like GET /jobs/updates/ results
     onState(state, detail) {},            // 'connecting' | 'live' | 'paused' | 'offline'
   });
   live.pause(); live.resume(); live.close();

   After a drop it reconnects (exponential backoff with jitter) with `started` set to the last
   `last_status_change` it saw, so nothing is missed; the server may repeat that boundary, so rows
   are de-duplicated on `id` + `last_status_change` (and a row older than one already delivered
   for the same job is dropped). While the tab is hidden it disconnects and shows 'paused'; when
   the tab is shown again it catches up the same way. */
(function () {
  'use strict';

  const PATH = '/ws/jobs/updates/';
  const MIN_DELAY_MS = 500;
  const MAX_DELAY_MS = 30000;
  const STABLE_MS = 10000;      // a connection open this long resets the backoff
  const REMEMBERED_JOBS = 50000;
  const CLOCK_SLACK_MS = 60000;  // first-connection start, allowing for client/server clock skew

  function socketBase() {
    return (window.location.protocol === 'https:' ? 'wss://' : 'ws://') + window.location.host;
  }

  function queryString(params, started) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params || {})) {
      if (name === 'started') continue;
      for (const one of Array.isArray(value) ? value : [value]) {
        if (one !== undefined && one !== null && one !== '') query.append(name, String(one));
      }
    }
    if (started) query.set('started', started);
    const text = query.toString();
    return text ? '?' + text : '';
  }

  function connect(options) {
    const opts = options || {};
    const onUpdates = opts.onUpdates || function () {};
    const onState = opts.onState || function () {};
    const base = opts.base || socketBase();
    const pauseWhenHidden = opts.pauseWhenHidden !== false;
    // Last change delivered per job id (insertion order = least recently changed first).
    const latest = new Map();
    let started = opts.started || (opts.params && opts.params.started) || null;
    let lastSeen = null;        // newest last_status_change delivered
    let socket = null;
    let retryTimer = null;
    let failures = 0;
    let openedAt = 0;
    let paused = false;
    let closed = false;
    let state = null;

    function setState(next, detail) {
      if (state === next && !detail) return;
      state = next;
      onState(next, detail || '');
    }

    function fresh(rows) {
      const out = [];
      for (const row of rows) {
        const known = latest.get(row.id);
        if (known !== undefined && row.last_status_change <= known) continue;
        latest.delete(row.id);
        latest.set(row.id, row.last_status_change);
        if (lastSeen === null || row.last_status_change > lastSeen) lastSeen = row.last_status_change;
        out.push(row);
      }
      while (latest.size > REMEMBERED_JOBS) latest.delete(latest.keys().next().value);
      return out;
    }

    function wanted() {
      return !closed && !paused && !(pauseWhenHidden && document.hidden);
    }

    function open() {
      clearTimeout(retryTimer);
      retryTimer = null;
      if (!wanted() || socket) return;
      // Resume from the last change seen; before any, from where the first connection began.
      const since = lastSeen || started;
      setState('connecting');
      const ws = new WebSocket(base + PATH + queryString(opts.params, since));
      socket = ws;
      ws.onopen = function () {
        openedAt = Date.now();
        if (!started) started = new Date(openedAt - CLOCK_SLACK_MS).toISOString();
        setState('live');
      };
      ws.onmessage = function (event) {
        let body;
        try {
          body = JSON.parse(event.data);
        } catch (err) {
          return;
        }
        const rows = fresh(body.results || []);
        if (rows.length) onUpdates(rows);
      };
      ws.onclose = function (event) {
        if (socket !== ws) return;
        socket = null;
        if (!wanted()) {
          if (!closed) setState('paused');
          return;
        }
        if (openedAt && Date.now() - openedAt >= STABLE_MS) failures = 0;
        openedAt = 0;
        // 1013: the server dropped us for falling behind; come straight back and catch up.
        const ceiling = event.code === 1013 ? MIN_DELAY_MS :
          Math.min(MAX_DELAY_MS, MIN_DELAY_MS * Math.pow(2, failures));
        failures += 1;
        const delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
        setState('offline', (event.reason ? event.reason + '; ' : '') +
          'retrying in ' + Math.max(1, Math.round(delay / 1000)) + ' s');
        retryTimer = setTimeout(open, delay);
      };
    }

    function drop(reason) {
      clearTimeout(retryTimer);
      retryTimer = null;
      if (socket) {
        const ws = socket;
        socket = null;
        ws.close(1000, reason);
      }
    }

    function onVisibility() {
      if (!pauseWhenHidden || closed) return;
      if (document.hidden) {
        drop('hidden');
        setState('paused');
      } else {
        open();
      }
    }
    document.addEventListener('visibilitychange', onVisibility);

    open();
    if (!wanted() && !closed) setState('paused');

    return {
      pause: function () {
        paused = true;
        drop('paused');
        setState('paused');
      },
      resume: function () {
        paused = false;
        failures = 0;
        if (wanted()) open(); else setState('paused');
      },
      close: function () {
        closed = true;
        drop('closed');
        document.removeEventListener('visibilitychange', onVisibility);
      },
    };
  }

  window.JobdeckLive = {connect: connect};
}());
