/* Job details: live status, and the latest execution's log (stdout/stderr tabs) that follows a
   running job by polling GET /job-executions/{id}/logs/ until it is finished. */
(function () {
  'use strict';
  const J = window.Jobdeck;
  const root = document.querySelector('[data-job]');
  if (!root) return;
  const jobId = root.dataset.jobId;
  const LOG_POLL_MS = 2000;

  // Phase bars are placed here, not by style attributes, which the Content-Security-Policy forbids.
  for (const bar of root.querySelectorAll('.phase[data-left]')) {
    bar.style.left = bar.dataset.left + '%';
    bar.style.width = bar.dataset.width + '%';
  }

  function applyJob(row) {
    if (String(row.id) !== jobId) return;
    const badge = root.querySelector('h1 [data-status-badge]');
    if (J.setStatus(badge, row.status)) {
      root.dataset.status = row.status;
      J.flash(badge);
      followLog();
    }
    for (const dd of root.querySelectorAll('dd[data-field]')) {
      const name = dd.dataset.field;
      if (name === 'status' || name === 'priority' || name === 'num_exes') {
        dd.textContent = String(row[name]);
      } else if (name === 'error') {
        if (!row.error) dd.textContent = '—';
        else if (!dd.querySelector('strong') || dd.querySelector('strong').textContent !== row.error.title) {
          dd.textContent = row.error.title + ' (' + row.error.category + ')';
        }
      } else if (name in row) {
        J.setTime(dd, row[name]);
      }
    }
    const numExes = root.querySelector('span[data-field="num_exes"]');
    if (numExes) numExes.textContent = String(row.num_exes);
    J.setActions(root.querySelector('.toolbar'), row.status);
    if (String(row.num_exes) !== root.dataset.numExes) {
      root.dataset.numExes = String(row.num_exes);
      J.showMessage('A new execution started; reload the page to see it and its log.', 'ok');
    }
  }

  document.addEventListener('jobdeck:jobs', function (event) {
    for (const row of event.detail) applyJob(row);
  });

  J.live({
    params: {job_id: [jobId]}, started: root.dataset.started,
    onUpdates: function (results) { for (const row of results) applyJob(row); },
  });

  // -- the log -------------------------------------------------------------------------------
  const log = root.querySelector('[data-log]');
  const exeId = log && log.dataset.exeId;
  const state = log && log.querySelector('[data-log-state]');
  const follow = log && log.querySelector('[data-follow]');
  let timer = null;
  let finished = false;

  function render(stream, text) {
    const pre = log.querySelector('pre[data-stream="' + stream + '"]');
    if (pre.textContent === text) return;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = text;
    if (follow.checked && atBottom) pre.scrollTop = pre.scrollHeight;
  }

  async function fetchLog() {
    timer = null;
    const result = await J.api('GET', '/job-executions/' + exeId + '/logs/');
    if (!result.ok) {
      state.textContent = result.status === 404
        ? 'No log is available for execution ' + exeId + ' on this server.'
        : 'The log could not be loaded: ' + result.message;
      if (result.status !== 404) schedule();
      return;
    }
    render('stdout', result.body.stdout || '');
    render('stderr', result.body.stderr || '');
    finished = !!result.body.is_finished;
    state.textContent = finished ? 'The execution has finished; this is its whole log.'
      : follow.checked ? 'Following the log as it grows…' : 'Not following; tick Follow to resume.';
    schedule();
  }

  function schedule() {
    if (!finished && follow.checked && !document.hidden && timer === null) {
      timer = window.setTimeout(fetchLog, LOG_POLL_MS);
    }
  }

  function followLog() {
    if (!exeId) return;
    finished = false;
    if (timer === null) fetchLog();
  }

  if (exeId) {
    const tabs = Array.from(log.querySelectorAll('[role="tab"]'));
    function select(tab) {
      for (const t of tabs) {
        const on = t === tab;
        t.setAttribute('aria-selected', String(on));
        t.tabIndex = on ? 0 : -1;
        document.getElementById(t.getAttribute('aria-controls')).hidden = !on;
      }
      tab.focus();
    }
    for (const tab of tabs) {
      tab.addEventListener('click', function () { select(tab); });
      tab.addEventListener('keydown', function (event) {
        const i = tabs.indexOf(tab);
        if (event.key === 'ArrowRight') select(tabs[(i + 1) % tabs.length]);
        else if (event.key === 'ArrowLeft') select(tabs[(i + tabs.length - 1) % tabs.length]);
      });
    }
    follow.addEventListener('change', function () { if (follow.checked) followLog(); });
    document.addEventListener('visibilitychange', schedule);
    fetchLog();
  }
}());
