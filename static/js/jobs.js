/* Jobs page: applies live updates to the rendered rows in place (batched per animation frame),
   adds new matching jobs where the order puts them, and keeps the filter URL clean. */
(function () {
  'use strict';
  const J = window.Jobdeck;
  const table = document.querySelector('[data-jobs]');
  if (!table) return;
  const tbody = table.tBodies[0];
  const rowsById = new Map();
  // Each row's cells by data-field, found once: updates write to them without querying.
  const cellsByRow = new WeakMap();

  const page = Number(table.dataset.page);
  const pageSize = Number(table.dataset.pageSize);
  const order = table.dataset.order;
  const statuses = table.dataset.statuses ? table.dataset.statuses.split(',') : [];
  const started = table.dataset.started;
  const descending = order.startsWith('-');
  const field = order.replace(/^-/, '');
  // Ties are broken by id, as the store does: the order's own id key, else ascending.
  const tieDescending = table.dataset.tie === '-id';
  const NUMERIC = ['id', 'priority', 'num_exes'];
  const NEW_HIGHLIGHT_MS = 5000;
  const countEl = document.querySelector('[data-count]');
  const notice = document.querySelector('[data-new-notice]');
  let pending = new Map();
  let scheduled = false;
  let outside = 0;
  const searching = !!new URLSearchParams(window.location.search).get('q');
  // Each shown job's value of the order's field, kept here so placing a row reads no cells.
  const keys = new Map();
  for (const tr of tbody.rows) {
    rowsById.set(tr.dataset.jobId, tr);
    keys.set(tr.dataset.jobId, trValue(tr));
  }

  function cell(className, label, field) {
    const td = document.createElement('td');
    td.className = className;
    td.dataset.label = label;
    if (field) td.dataset.field = field;
    return td;
  }

  function link(href, text) {
    const a = document.createElement('a');
    a.href = href;
    a.textContent = text;
    return a;
  }

  function actionButton(action, id, label, danger) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = danger ? 'btn btn-danger' : 'btn';
    b.dataset.action = action;
    b.dataset.jobId = id;
    b.setAttribute('aria-label', label + ' job ' + id);
    b.textContent = label;
    return b;
  }

  /* The same cells as the row in templates/jobs.html. */
  function makeRow(row) {
    const tr = document.createElement('tr');
    tr.dataset.jobId = row.id;
    tr.dataset.status = row.status;
    const select = document.createElement('td');
    select.className = 'col-select';
    select.dataset.label = 'Select';
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.dataset.select = '';
    box.value = row.id;
    box.setAttribute('aria-label', 'Select job ' + row.id);
    select.appendChild(box);
    const id = cell('col-id', 'ID');
    id.appendChild(link('/dashboard/jobs/' + row.id, String(row.id)));
    const type = cell('col-job_type__name', 'Job type');
    type.appendChild(link('/dashboard/job-types/' + row.job_type.id, row.job_type.name));
    const version = document.createElement('span');
    version.className = 'version';
    version.textContent = row.job_type.version;
    type.append(' ', version);
    const status = cell('col-status', 'Status');
    const badge = document.createElement('span');
    badge.dataset.statusBadge = '';
    J.setStatus(badge, row.status);
    status.appendChild(badge);
    const priority = cell('col-priority num', 'Priority', 'priority');
    const runs = cell('col-num_exes num', 'Runs', 'num_exes');
    const created = cell('col-created', 'Created');
    J.setTime(created, row.created);
    const startedCell = cell('col-started', 'Started', 'started');
    const endedCell = cell('col-ended', 'Ended', 'ended');
    const durationCell = cell('col-duration num', 'Duration', 'duration');
    const changed = cell('col-last_status_change', 'Status changed', 'last_status_change');
    const modified = cell('col-last_modified', 'Last modified', 'last_modified');
    const error = cell('col-error', 'Failure', 'error');
    const actions = cell('col-actions', 'Actions');
    const span = document.createElement('span');
    span.className = 'actions';
    span.append(actionButton('cancel', row.id, 'Cancel', true),
      actionButton('requeue', row.id, 'Requeue', false));
    J.setActions(span, row.status);
    actions.appendChild(span);
    tr.append(select, id, type, status, priority, runs, created, startedCell, endedCell, changed,
      modified, durationCell, error, actions);
    updateRow(tr, row, true);
    return tr;
  }

  function setText(el, text) {
    if (el.textContent === text) return false;
    el.textContent = text;
    return true;
  }

  function rowCells(tr) {
    let cells = cellsByRow.get(tr);
    if (!cells) {
      cells = {badge: tr.querySelector('[data-status-badge]')};
      for (const td of tr.querySelectorAll('[data-field]')) cells[td.dataset.field] = td;
      cellsByRow.set(tr, cells);
    }
    return cells;
  }

  /* Writes only the cells whose value changed; a state older than the one shown is ignored
     (a catch-up batch can arrive after a newer change). */
  function updateRow(tr, row, matches) {
    const cells = rowCells(tr);
    const shown = cells.last_modified.firstElementChild;
    if (shown && shown.tagName === 'TIME' && row.last_modified &&
        row.last_modified < shown.getAttribute('datetime')) return;
    if (J.setStatus(cells.badge, row.status)) {
      tr.dataset.status = row.status;
      J.setActions(tr, row.status);
      J.flash(tr);
    }
    setText(cells.priority, String(row.priority));
    setText(cells.num_exes, String(row.num_exes));
    J.setTime(cells.last_status_change, row.last_status_change);
    J.setTime(cells.last_modified, row.last_modified);
    J.setTime(cells.started, row.started);
    J.setTime(cells.ended, row.ended);
    setDuration(cells.duration, row);
    setFailure(cells.error, row);
    if (tr.classList.contains('stale') === matches) {
      tr.classList.toggle('stale', !matches);
      if (matches) tr.removeAttribute('title');
      else tr.title = 'No longer matches the status filter';
    }
  }

  /* Duration: ended - started, or ticking (with the timeout bar) while it runs. */
  function setDuration(td, row) {
    const running = row.status === 'RUNNING' && row.started;
    const key = (running ? 'run:' : '') + row.started + '/' + row.ended;
    if (td.dataset.key === key) return;
    td.dataset.key = key;
    td.textContent = '';
    if (!row.started || (!row.ended && !running)) {
      const dash = document.createElement('span');
      dash.className = 'none';
      dash.textContent = '—';
      td.appendChild(dash);
      return;
    }
    const span = document.createElement('span');
    span.dataset.duration = '';
    const end = row.ended ? Date.parse(row.ended) : J.serverNow();
    const seconds = (end - Date.parse(row.started)) / 1000;
    span.textContent = J.duration(seconds);
    td.appendChild(span);
    if (running) {
      span.dataset.since = row.started;
      if (row.timeout) {
        const bar = document.createElement('progress');
        bar.className = 'timeout-bar';
        bar.dataset.timeoutBar = '';
        bar.max = row.timeout;
        td.appendChild(bar);
        J.setTimeoutBar(bar, Math.round(seconds));
      }
    }
  }

  /* Failure reason: the error's name, and the exit code the page was rendered with while the
     job stays FAILED (live rows do not carry executions). */
  function setFailure(td, row) {
    const code = row.status === 'FAILED' ? td.dataset.exitCode : undefined;
    const name = row.error ? row.error.name : '';
    const text = name + (code !== undefined ? ' · exit ' + code : '');
    if (td.textContent === text) return;
    td.textContent = '';
    if (name) {
      const span = document.createElement('span');
      span.className = 'error-name';
      span.title = row.error.title || '';
      span.textContent = name;
      td.appendChild(span);
    }
    if (code !== undefined) {
      const exit = document.createElement('span');
      exit.className = 'exit-code';
      exit.textContent = ' · exit ' + code;
      td.appendChild(exit);
    } else {
      delete td.dataset.exitCode;
    }
  }

  /* The order's value of an API row, and of a row on the page (read from its cells). */
  function rowValue(row) {
    if (field === 'job_type__name') return row.job_type.name;
    return row[field] === null || row[field] === undefined ? '' : row[field];
  }

  function trValue(tr) {
    if (field === 'id') return Number(tr.dataset.jobId);
    if (field === 'status') return tr.dataset.status;
    if (field === 'job_type__name') return tr.querySelector('.col-job_type__name a').textContent;
    const td = tr.querySelector('.col-' + field);
    if (!td) return '';
    const time = td.querySelector('time');
    if (time) return time.getAttribute('datetime');
    return NUMERIC.includes(field) ? Number(td.textContent) : td.textContent;
  }

  function compare(value, id, otherValue, otherId) {
    if (value !== otherValue) {
      const less = value < otherValue;
      return (less !== descending) ? -1 : 1;
    }
    if (id === otherId) return 0;
    return ((id < otherId) !== tieDescending) ? -1 : 1;
  }

  /* Where a job with this order value goes among the page's rows (skipping `except`): a
     binary search over the kept keys, the rows being in order. */
  function position(value, id, except) {
    const rows = tbody.rows;
    const skip = except ? except.sectionRowIndex : -1;
    const count = rows.length - (skip >= 0 ? 1 : 0);
    let low = 0;
    let high = count;
    while (low < high) {
      const mid = (low + high) >> 1;
      const tr = rows[mid >= skip && skip >= 0 ? mid + 1 : mid];
      if (compare(value, id, keys.get(tr.dataset.jobId), Number(tr.dataset.jobId)) > 0) low = mid + 1;
      else high = mid;
    }
    const before = rows[low >= skip && skip >= 0 ? low + 1 : low] || null;
    return {index: low, before: before, count: count};
  }

  /* Whether the row belongs on this page: not before its first row past page 1, not after
     its last row when the page is full. */
  function onThisPage(place) {
    if (place.index === 0 && page > 1 && place.count) return false;
    return !(place.index === place.count && place.count >= pageSize);
  }

  function trimPage() {
    while (tbody.rows.length > pageSize) {
      const last = tbody.rows[tbody.rows.length - 1];
      rowsById.delete(last.dataset.jobId);
      keys.delete(last.dataset.jobId);
      last.remove();
    }
  }

  function highlightNew(tr) {
    tr.classList.add('row-new');
    window.setTimeout(function () { tr.classList.remove('row-new'); }, NEW_HIGHLIGHT_MS);
    J.flash(tr);
  }

  function addRow(row, place) {
    const tr = makeRow(row);
    rowsById.set(String(row.id), tr);
    keys.set(String(row.id), rowValue(row));
    tbody.insertBefore(tr, place.before);
    trimPage();
    highlightNew(tr);
  }

  /* A row whose order value changed moves to its sorted place (kept on the page). */
  function resort(tr, value) {
    keys.set(tr.dataset.jobId, value);
    const place = position(value, Number(tr.dataset.jobId), tr);
    if (place.before !== tr.nextElementSibling) tbody.insertBefore(tr, place.before);
  }

  /* "Showing first–last of count": the rows on the page and the total, kept exact. */
  function updateSummary() {
    const shown = tbody.rows.length;
    const first = document.querySelector('[data-first]');
    const last = document.querySelector('[data-last]');
    const range = document.querySelector('[data-range]');
    const empty = document.querySelector('[data-empty]');
    if (!first || !last || !countEl) return;
    const start = shown ? (page - 1) * pageSize + 1 : 0;
    setText(first, String(start));
    setText(last, String(shown ? start + shown - 1 : 0));
    if (Number(countEl.textContent) < start + shown - 1) countEl.textContent = String(start + shown - 1);
    if (range && range.hidden !== !shown) range.hidden = !shown;
    if (empty && empty.hidden !== !!shown) empty.hidden = !!shown;
  }

  function applyRow(row) {
    const matches = !statuses.length || statuses.includes(row.status);
    const tr = rowsById.get(String(row.id));
    if (tr) {
      updateRow(tr, row, matches);
      const value = trValue(tr);
      if (value !== keys.get(String(row.id))) resort(tr, value);
      return;
    }
    // A search's matches are resolved by the server: live updates only refresh its rows.
    if (!matches || searching) return;
    const isNew = row.created >= started;
    // Counted once: a new job, or (one status filtered) a job that just entered that status.
    if ((isNew || statuses.length === 1) && countEl) {
      countEl.textContent = String(Number(countEl.textContent) + 1);
    }
    const place = position(rowValue(row), row.id, null);
    if (onThisPage(place)) addRow(row, place);
    else if (isNew) {
      outside += 1;
      notice.querySelector('[data-new-count]').textContent = String(outside);
      notice.hidden = false;
    }
  }

  function flush() {
    scheduled = false;
    const batch = pending;
    if (!batch.size) return;
    pending = new Map();
    for (const row of batch.values()) applyRow(row);
    updateSummary();
  }
  /* Queues rows (GET /jobs/updates/ shape); the newest state of each job wins. */
  function applyUpdates(results) {
    for (const row of results) pending.set(String(row.id), row);
    if (!scheduled) {
      scheduled = true;
      window.requestAnimationFrame(flush);
    }
  }

  document.addEventListener('jobdeck:jobs', function (event) { applyUpdates(event.detail); });

  const form = document.querySelector('[data-filters]');
  const filtersToggle = document.querySelector('[data-filters-toggle]');
  if (form && filtersToggle) {
    // Narrow screens: the filters collapse behind this button (CSS hides it on wide ones).
    filtersToggle.addEventListener('click', function () {
      const open = !form.hasAttribute('data-open');
      form.toggleAttribute('data-open', open);
      filtersToggle.setAttribute('aria-expanded', String(open));
    });
  }
  if (form) {
    // A preset range and a custom From are alternatives: choosing one clears the other, so
    // neither is dropped silently on submit.
    const range = form.querySelector('[data-range]');
    const from = form.querySelector('[data-custom-from]');
    range.addEventListener('change', function () { if (range.value) from.value = ''; });
    from.addEventListener('input', function () { if (from.value) range.value = ''; });
    form.addEventListener('submit', function () {
      // Submit only the filters in use, so the URL stays short and shareable.
      for (const el of form.elements) {
        const value = el.value || '';
        const unused = !value.trim() || value === el.dataset.default;
        const typed = el.type === 'text' || el.type === 'search' || el.type === 'datetime-local' || el.tagName === 'SELECT';
        if (el.name && typed && unused) el.disabled = true;
      }
      window.addEventListener('pageshow', function () {
        for (const el of form.elements) el.disabled = false;
      }, {once: true});
    });
  }

  const hasEnd = new URLSearchParams(window.location.search).get('ended');
  if (!hasEnd && !('invalid' in table.dataset)) {
    J.live({
      params: J.pageParams(['status', 'page', 'page_size', 'order', 'started', 'ended', 'q']),
      started: started, onUpdates: applyUpdates,
    });
  }
  window.JobdeckJobs = {applyUpdates, flushNow: flush};
}());
