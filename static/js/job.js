/* Job details: everything on the page follows the live feed (status, summary, execution cards,
   phases, buttons, error), a running execution's elapsed time and phase bars tick on, and the
   latest execution's log (stdout/stderr tabs) follows a running job by polling
   GET /job-executions/{id}/logs/ until it is finished, also while it is searched (matches
   marked, counted, stepped through); each log downloads whole from .../logs/{stream}/. */
(function () {
  'use strict';
  const J = window.Jobdeck;
  const root = document.querySelector('[data-job]');
  if (!root) return;
  const jobId = root.dataset.jobId;
  const LOG_POLL_MS = 2000;
  const TICK_MS = 1000;
  const RUNNING_REFRESH_MS = 5000;
  const SETTLE_MS = 400;
  const SETTLE_TRIES = 5;
  const TAIL_LINES = 5;
  const MAX_MARKS = 1000;  // matches marked in one log (the count then says "1000+")
  const FINAL = ['COMPLETED', 'FAILED', 'CANCELED'];
  // The server's clock minus this one, so elapsed times agree with the server's timestamps.
  const clockOffset = (Date.parse(root.dataset.started) || Date.now()) - Date.now();

  function serverNow() { return Date.now() + clockOffset; }

  /* The same words as handlers/dashboard.py's elapsed_text. */
  function elapsedText(seconds) {
    if (seconds < 60) return seconds.toFixed(1) + ' s';
    const whole = Math.floor(seconds);
    if (whole < 3600) return Math.floor(whole / 60) + ' min ' + String(whole % 60).padStart(2, '0') + ' s';
    return Math.floor(whole / 3600) + ' h ' + String(Math.floor(whole % 3600 / 60)).padStart(2, '0') + ' min';
  }

  /* Phase bars proportional to their durations, inside the bar; a running execution's span
     (and its running phase) end now. Placed here, not by style attributes, which the
     Content-Security-Policy forbids. */
  function placeExecution(li) {
    if (!li.dataset.spanStart) return false;
    const running = !li.dataset.spanEnd;
    const start = Number(li.dataset.spanStart);
    const end = running ? Math.max(start, serverNow()) : Number(li.dataset.spanEnd);
    const total = Math.max(1, end - start);
    for (const bar of li.querySelectorAll('.phase[data-start]')) {
      const from = Number(bar.dataset.start);
      const to = bar.dataset.end ? Number(bar.dataset.end) : end;
      const width = Math.min(100, Math.max(0.5, (to - from) / total * 100));
      const left = Math.max(0, Math.min((from - start) / total * 100, 100 - width));
      bar.style.left = left.toFixed(2) + '%';
      bar.style.width = width.toFixed(2) + '%';
    }
    const elapsed = li.querySelector('[data-elapsed]');
    if (elapsed && running) elapsed.textContent = 'running for ' + elapsedText((end - start) / 1000);
    const bar = li.querySelector('[data-timeout-bar]');
    if (bar && running) J.setTimeoutBar(bar, Math.round((end - start) / 1000));
    return running;
  }

  function placeAll() {
    let running = false;
    for (const li of root.querySelectorAll('li.exe')) running = placeExecution(li) || running;
    return running;
  }

  placeAll();
  window.setInterval(function () { if (!document.hidden) placeAll(); }, TICK_MS);

  // -- following the job: the page's own HTML, refetched, keeps one rendering ----------------
  let refreshing = false;
  let again = false;
  let settleTries = 0;

  function swap(selector, doc) {
    const current = root.querySelector(selector);
    const fresh = doc.querySelector(selector);
    if (current && fresh) current.replaceWith(document.importNode(fresh, true));
  }

  function applyPage(doc) {
    const fresh = doc.querySelector('[data-job]');
    if (!fresh) return;
    const status = fresh.dataset.status;
    const badge = root.querySelector('h1 [data-status-badge]');
    if (J.setStatus(badge, status)) J.flash(badge);
    root.dataset.status = status;
    root.dataset.numExes = fresh.dataset.numExes;
    J.setActions(root.querySelector('.toolbar'), status);
    swap('[data-summary-fields]', doc);
    swap('[data-exes]', doc);
    placeAll();
    const freshLog = doc.querySelector('[data-log]');
    const currentLog = root.querySelector('[data-log]');
    if (freshLog && currentLog && freshLog.dataset.exeId !== currentLog.dataset.exeId) {
      log.stop();
      currentLog.replaceWith(document.importNode(freshLog, true));
      log = startLog(root.querySelector('[data-log]'));
    } else if (freshLog && currentLog) {
      currentLog.dataset.exeStatus = freshLog.dataset.exeStatus || '';
      log.resume();
    }
    log.showTail();
    // A cancel writes the job, then its execution: refetch until the card has caught up.
    const unfinished = root.querySelector('li.exe[data-exe-status="RUNNING"], li.exe[data-exe-status="QUEUED"]');
    if (FINAL.includes(status) && unfinished && settleTries < SETTLE_TRIES) {
      settleTries += 1;
      window.setTimeout(refresh, SETTLE_MS);
    } else {
      settleTries = 0;
    }
  }

  async function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    try {
      const response = await fetch(window.location.pathname, {
        credentials: 'same-origin', headers: {Accept: 'text/html'}, cache: 'no-store'});
      if (response.ok) applyPage(new DOMParser().parseFromString(await response.text(), 'text/html'));
    } catch (err) {
      // Offline: the live indicator says so; the next change or tick tries again.
    }
    refreshing = false;
    if (again) { again = false; refresh(); }
  }

  function applyJob(row) {
    if (String(row.id) !== jobId) return;
    const badge = root.querySelector('h1 [data-status-badge]');
    if (J.setStatus(badge, row.status)) {
      root.dataset.status = row.status;
      J.flash(badge);
    }
    J.setActions(root.querySelector('.toolbar'), row.status);
    refresh();
  }

  document.addEventListener('jobdeck:jobs', function (event) {
    for (const row of event.detail) applyJob(row);
  });

  J.live({
    params: {job_id: [jobId]}, started: root.dataset.started,
    onUpdates: function (results) { for (const row of results) applyJob(row); },
  });

  // Phase changes inside a run (pre → job → post) change no job status: refetch while it runs.
  window.setInterval(function () {
    if (!document.hidden && root.dataset.status === 'RUNNING') refresh();
  }, RUNNING_REFRESH_MS);

  // -- the log -------------------------------------------------------------------------------
  function startLog(section) {
    const exeId = section && section.dataset.exeId;
    const none = {stop() {}, resume() {}, showTail() {}};
    if (!exeId) return none;
    const state = section.querySelector('[data-log-state]');
    const follow = section.querySelector('[data-follow]');
    const tabs = Array.from(section.querySelectorAll('[role="tab"]'));
    let timer = null;
    let finished = false;
    let stopped = false;
    let chosen = false;
    let stderrText = '';
    const texts = {stdout: '', stderr: ''};
    const search = section.querySelector('[data-log-search]');
    const count = section.querySelector('[data-log-count]');
    const steps = Array.from(section.querySelectorAll('[data-log-step]'));
    let current = -1;  // the current match of the shown stream, -1: none

    function select(tab, focus) {
      for (const t of tabs) {
        const on = t === tab;
        t.setAttribute('aria-selected', String(on));
        t.tabIndex = on ? 0 : -1;
        document.getElementById(t.getAttribute('aria-controls')).hidden = !on;
      }
      if (focus) tab.focus();
      current = search.value ? 0 : -1;
      showMatches(false);
    }

    /* Draws a stream's text, its matches of the search marked (the current one `.current`);
       a log that grows while searching keeps its marks and the current match's place. */
    function render(stream, text, force) {
      const pre = section.querySelector('pre[data-stream="' + stream + '"]');
      if (!force && pre.textContent === text) return;
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      const query = search.value;
      if (!query) {
        pre.textContent = text;
      } else {
        const pattern = new RegExp(query.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gi');
        const parts = [];
        let from = 0;
        let marks = 0;
        for (const match of text.matchAll(pattern)) {
          if (marks === MAX_MARKS) break;
          parts.push(text.slice(from, match.index));
          const mark = document.createElement('mark');
          mark.textContent = match[0];
          parts.push(mark);
          from = match.index + match[0].length;
          marks += 1;
        }
        parts.push(text.slice(from));
        pre.replaceChildren(...parts);
      }
      if (follow.checked && atBottom && current < 0) pre.scrollTop = pre.scrollHeight;
      if (stream === shownStream()) showMatches(false);
    }

    function shownStream() {
      return tabs.find((t) => t.getAttribute('aria-selected') === 'true').dataset.tab;
    }

    /* The count and the current match of the shown stream; `scroll` brings it into view. */
    function showMatches(scroll) {
      const marks = section.querySelectorAll('pre[data-stream="' + shownStream() + '"] mark');
      for (const step of steps) step.disabled = !marks.length;
      if (!search.value) {
        count.textContent = '';
        return;
      }
      if (!marks.length) {
        current = -1;
        count.textContent = 'No matches';
        return;
      }
      current = Math.min(Math.max(current, 0), marks.length - 1);
      marks.forEach((mark, i) => mark.classList.toggle('current', i === current));
      count.textContent = (current + 1) + ' of ' + marks.length +
        (marks.length === MAX_MARKS ? '+' : '') + (marks.length === 1 ? ' match' : ' matches');
      if (scroll) marks[current].scrollIntoView({block: 'center'});
    }

    function step(by) {
      const marks = section.querySelectorAll('pre[data-stream="' + shownStream() + '"] mark');
      if (!marks.length) return;
      current = (current + by + marks.length) % marks.length;
      showMatches(true);
    }

    function searchAgain() {
      current = search.value ? 0 : -1;
      for (const stream of ['stdout', 'stderr']) render(stream, texts[stream], true);
      showMatches(true);
    }

    /* The failure's last stderr lines, under the error in the summary. */
    function showTail() {
      const tail = root.querySelector('[data-error-tail]');
      if (!tail) return;
      const lines = stderrText.split('\n').filter(function (l) { return l.trim() !== ''; });
      tail.querySelector('[data-error-tail-text]').textContent = lines.slice(-TAIL_LINES).join('\n');
      tail.hidden = !lines.length || section.dataset.exeStatus !== 'FAILED';
    }

    async function fetchLog() {
      timer = null;
      if (stopped) return;
      const result = await J.api('GET', '/job-executions/' + exeId + '/logs/');
      if (stopped) return;
      if (!result.ok) {
        state.textContent = result.status === 404
          ? 'No log is available for execution ' + exeId + ' on this server.'
          : 'The log could not be loaded: ' + result.message;
        if (result.status !== 404) schedule();
        return;
      }
      const stdout = result.body.stdout || '';
      stderrText = result.body.stderr || '';
      texts.stdout = stdout;
      texts.stderr = stderrText;
      render('stdout', stdout, false);
      render('stderr', stderrText, false);
      // A failure opens on stderr; when stderr is empty but stdout is not, stdout holds it.
      if (!chosen && section.dataset.exeStatus === 'FAILED' && !stderrText && stdout) {
        select(tabs[0], false);
      }
      showTail();
      finished = !!result.body.is_finished;
      state.textContent = finished ? 'The execution has finished; this is its whole log.'
        : follow.checked ? 'Following the log as it grows…' : 'Not following; tick Follow to resume.';
      schedule();
    }

    function schedule() {
      if (!stopped && !finished && follow.checked && !document.hidden && timer === null) {
        timer = window.setTimeout(fetchLog, LOG_POLL_MS);
      }
    }

    function resume() {
      finished = false;
      if (timer === null) fetchLog();
    }

    for (const tab of tabs) {
      tab.addEventListener('click', function () { chosen = true; select(tab, true); });
      tab.addEventListener('keydown', function (event) {
        const i = tabs.indexOf(tab);
        chosen = true;
        if (event.key === 'ArrowRight') select(tabs[(i + 1) % tabs.length], true);
        else if (event.key === 'ArrowLeft') select(tabs[(i + tabs.length - 1) % tabs.length], true);
      });
    }
    follow.addEventListener('change', function () { if (follow.checked) resume(); });
    search.addEventListener('input', searchAgain);
    search.addEventListener('keydown', function (event) {
      if (event.key !== 'Enter') return;
      event.preventDefault();
      step(event.shiftKey ? -1 : 1);
    });
    for (const button of steps) {
      button.addEventListener('click', function () { step(Number(button.dataset.logStep)); });
    }
    document.addEventListener('visibilitychange', schedule);
    fetchLog();
    return {
      stop() {
        stopped = true;
        window.clearTimeout(timer);
        document.removeEventListener('visibilitychange', schedule);
      },
      resume: resume,
      showTail: showTail,
    };
  }

  let log = startLog(root.querySelector('[data-log]'));
}());
