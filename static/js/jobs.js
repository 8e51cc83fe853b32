/* Jobs page: applies live updates to the rendered rows in place (batched per animation frame),
   adds new matching jobs where the order puts them, and keeps the filter URL clean. */
(function () {
  'use strict';
  const J = window.Jobdeck;
  const table = document.querySelector('[data-jobs]');
  if (!table) return;
  const tbody = table.tBodies[0];
  const rowsById = new Map();
  for (const tr of tbody.rows) rowsById.set(tr.dataset.jobId, tr);

  const page = Number(table.dataset.page);
  const lastPage = Number(table.dataset.lastPage);
  const pageSize = Number(table.dataset.pageSize);
  const order = table.dataset.order;
  const statuses = table.dataset.statuses ? table.dataset.statuses.split(',') : [];
  const started = table.dataset.started;
  const descending = order.startsWith('-');
  const field = order.replace(/^-/, '');
  // Where a job the order ranks newest belongs: top of page 1, or bottom of the last page.
  const ordered = ['id', 'created', 'last_modified', 'last_status_change'].includes(field);
  const insertAt = !ordered ? null : descending ? (page === 1 ? 'top' : null)
    : (page === lastPage ? 'bottom' : null);
  const countEl = document.querySelector('[data-count]');
  const notice = document.querySelector('[data-new-notice]');
  let pending = new Map();
  let scheduled = false;
  let outside = 0;

  function cell(className, label) {
    const td = document.createElement('td');
    td.className = className;
    td.dataset.label = label;
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
    const priority = cell('col-priority num', 'Priority');
    priority.dataset.field = 'priority';
    const runs = cell('col-num_exes num', 'Runs');
    runs.dataset.field = 'num_exes';
    const created = cell('col-created', 'Created');
    J.setTime(created, row.created);
    const changed = cell('col-last_status_change', 'Status changed');
    changed.dataset.field = 'last_status_change';
    const modified = cell('col-last_modified', 'Last modified');
    modified.dataset.field = 'last_modified';
    const error = cell('col-error', 'Error');
    error.dataset.field = 'error';
    const actions = cell('col-actions', 'Actions');
    const span = document.createElement('span');
    span.className = 'actions';
    span.append(actionButton('cancel', row.id, 'Cancel', true),
      actionButton('requeue', row.id, 'Requeue', false));
    actions.appendChild(span);
    tr.append(id, type, status, priority, runs, created, changed, modified, error, actions);
    updateRow(tr, row, true);
    return tr;
  }

  function setText(el, text) {
    if (el.textContent === text) return false;
    el.textContent = text;
    return true;
  }

  /* Writes only the cells whose value changed; a state older than the one shown is ignored
     (a catch-up batch can arrive after a newer change). */
  function updateRow(tr, row, matches) {
    const shown = tr.querySelector('[data-field="last_modified"] time');
    if (shown && row.last_modified && row.last_modified < shown.getAttribute('datetime')) return;
    const badge = tr.querySelector('[data-status-badge]');
    if (J.setStatus(badge, row.status)) {
      tr.dataset.status = row.status;
      J.setActions(tr, row.status);
      J.flash(tr);
    }
    const cells = {};
    for (const td of tr.querySelectorAll('[data-field]')) cells[td.dataset.field] = td;
    setText(cells.priority, String(row.priority));
    setText(cells.num_exes, String(row.num_exes));
    J.setTime(cells.last_status_change, row.last_status_change);
    J.setTime(cells.last_modified, row.last_modified);
    setText(cells.error, row.error ? row.error.title : '');
    J.setActions(tr, row.status);
    tr.classList.toggle('stale', !matches);
    if (matches) tr.removeAttribute('title');
    else tr.title = 'No longer matches the status filter';
  }

  function sortValue(row) {
    if (field === 'id') return row.id;
    return row[field] || '';
  }

  function belongsAt(row) {
    if (!insertAt) return false;
    const rows = tbody.rows;
    if (insertAt === 'bottom' && rows.length >= pageSize) return false;
    if (!rows.length) return true;
    const edge = insertAt === 'top' ? rows[0] : rows[rows.length - 1];
    let edgeValue = '';
    if (field === 'id') edgeValue = Number(edge.dataset.jobId);
    else {
      const time = edge.querySelector('.col-' + field + ' time');
      if (time) edgeValue = time.getAttribute('datetime');
    }
    return sortValue(row) >= edgeValue;
  }

  function addRow(row) {
    const tr = makeRow(row);
    rowsById.set(String(row.id), tr);
    if (insertAt === 'top') {
      tbody.insertBefore(tr, tbody.firstChild);
      while (tbody.rows.length > pageSize) {
        const last = tbody.rows[tbody.rows.length - 1];
        rowsById.delete(last.dataset.jobId);
        last.remove();
      }
    } else {
      tbody.appendChild(tr);
    }
    J.flash(tr);
    const empty = document.querySelector('[data-empty]');
    if (empty) empty.hidden = true;
  }

  function applyRow(row) {
    const matches = !statuses.length || statuses.includes(row.status);
    const tr = rowsById.get(String(row.id));
    if (tr) {
      updateRow(tr, row, matches);
      return;
    }
    if (!matches) return;
    const isNew = row.created >= started;
    if (belongsAt(row)) addRow(row);
    else if (isNew) {
      outside += 1;
      notice.querySelector('[data-new-count]').textContent = String(outside);
      notice.hidden = false;
    }
    if (isNew && countEl) {
      countEl.textContent = String(Number(countEl.textContent) + 1);
      countEl.hidden = false;
    }
  }

  function flush() {
    scheduled = false;
    const batch = pending;
    pending = new Map();
    for (const row of batch.values()) applyRow(row);
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
  if (form) {
    form.addEventListener('submit', function () {
      // Submit only the filters in use, so the URL stays short and shareable.
      const custom = form.querySelector('#f-from');
      if (custom.value.trim()) form.querySelector('[data-range]').disabled = true;
      for (const el of form.elements) {
        const value = el.value || '';
        const unused = !value.trim() || value === el.dataset.default;
        if (el.name && (el.type === 'text' || el.tagName === 'SELECT') && unused) {
          el.disabled = true;
        }
      }
      window.addEventListener('pageshow', function () {
        for (const el of form.elements) el.disabled = false;
      }, {once: true});
    });
  }

  const hasEnd = new URLSearchParams(window.location.search).get('ended');
  if (!hasEnd) {
    J.live({
      params: J.pageParams(['status', 'page', 'page_size', 'order', 'started', 'ended']),
      started: started, onUpdates: applyUpdates,
    });
  }
  window.JobdeckJobs = {applyUpdates, flushNow: flush};
}());
