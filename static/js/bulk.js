/* Bulk actions (jobs page, job type page): select rows, or all jobs matching the filter, then
   cancel or requeue them after a confirm that states the count; "Requeue all failed".
   Cancel is PATCH /jobs/{id}/ per job (the API has no bulk cancel); requeue is one
   POST /queue/requeue-jobs/ with the filter (or the ids), whose X-Jobs-Requeued header says
   how many it requeued. The filter comes from the server as the requeue call's body. */
(function () {
  'use strict';
  const J = window.Jobdeck;
  const MAX_BULK = 10000;
  const PAGE = 1000;
  const PARALLEL = 4;
  // requeue-jobs body field -> GET /jobs/ query argument.
  const QUERY_NAMES = {status: 'status', job_ids: 'job_id', job_type_ids: 'job_type_id',
    job_type_names: 'job_type_name', job_type_categories: 'job_type_category',
    started: 'started', ended: 'ended'};

  function plural(n, word) { return n + ' ' + word + (n === 1 ? '' : 's'); }

  function readFilter(el) {
    try { return el && el.dataset.filter ? JSON.parse(el.dataset.filter) : {}; } catch (err) { return {}; }
  }

  /* The filter with its statuses narrowed to `only`; null when nothing can be left. */
  function narrowed(filter, only) {
    const statuses = filter.status ? filter.status.filter(function (s) { return only.includes(s); }) : only;
    return statuses.length ? Object.assign({}, filter, {status: statuses}) : null;
  }

  function query(filter, extra) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(filter)) {
      for (const v of Array.isArray(value) ? value : [value]) params.append(QUERY_NAMES[key], String(v));
    }
    for (const [key, value] of Object.entries(extra)) params.append(key, String(value));
    return '/jobs/?' + params.toString();
  }

  async function countMatching(filter) {
    const result = await J.api('GET', query(filter, {page_size: 1}));
    if (!result.ok) throw new Error(result.message);
    return result.body.count;
  }

  /* Every job the filter matches, as {id, status}. */
  async function allMatching(filter) {
    const jobs = [];
    for (let page = 1; ; page += 1) {
      const result = await J.api('GET', query(filter, {page: page, page_size: PAGE, order: 'id'}));
      if (!result.ok) throw new Error(result.message);
      if (result.body.count > MAX_BULK) {
        throw new Error(result.body.count + ' jobs match; narrow the filter to at most ' + MAX_BULK + '.');
      }
      for (const job of result.body.results) jobs.push({id: job.id, status: job.status});
      if (jobs.length >= result.body.count || !result.body.results.length) return jobs;
    }
  }

  async function requeue(body) {
    const result = await J.api('POST', '/queue/requeue-jobs/?page_size=1000', body);
    if (!result.ok) throw new Error(result.message);
    document.dispatchEvent(new CustomEvent('jobdeck:jobs', {detail: result.body.results}));
    return {matched: Number(result.headers.get('X-Jobs-Matched')),
      requeued: Number(result.headers.get('X-Jobs-Requeued'))};
  }

  async function cancelAll(ids) {
    let canceled = 0;
    const failures = [];
    let next = 0;
    async function worker() {
      while (next < ids.length) {
        const id = ids[next];
        next += 1;
        const result = await J.api('PATCH', '/jobs/' + id + '/', {status: 'CANCELED'});
        if (result.ok) {
          canceled += 1;
          document.dispatchEvent(new CustomEvent('jobdeck:jobs', {detail: [result.body]}));
        } else {
          failures.push(result.message);
        }
      }
    }
    const workers = [];
    for (let i = 0; i < PARALLEL; i += 1) workers.push(worker());
    await Promise.all(workers);
    return {canceled: canceled, failures: failures};
  }

  async function requeueFailed(button) {
    const filter = narrowed(readFilter(button), ['FAILED']);
    const count = filter ? await countMatching(filter) : 0;
    if (!count) {
      J.showMessage('No failed jobs match.', 'ok');
      return;
    }
    if (!window.confirm('Requeue all ' + plural(count, 'failed job') + '?')) return;
    const done = await requeue(filter);
    J.showMessage('Requeued ' + done.requeued + ' of ' + plural(done.matched, 'failed job') + '.', 'ok');
  }

  document.addEventListener('click', async function (event) {
    const button = event.target.closest('button[data-requeue-failed]');
    if (!button || button.disabled) return;
    button.disabled = true;
    try { await requeueFailed(button); } catch (err) { J.showMessage(err.message, 'error'); }
    button.disabled = false;
  });

  // -- selection (jobs page) ------------------------------------------------------------------
  const bar = document.querySelector('[data-bulk]');
  const table = document.querySelector('table[data-jobs]');
  if (!bar || !table) return;
  const total = Number(bar.dataset.bulkCount);
  const state = bar.querySelector('[data-bulk-state]');
  const selectAll = bar.querySelector('[data-bulk-all]');
  const clear = bar.querySelector('[data-bulk-clear]');
  const pageBox = table.querySelector('[data-select-page]');
  let matching = false;

  function boxes() { return Array.from(table.querySelectorAll('tbody [data-select]')); }
  function checked() { return boxes().filter(function (b) { return b.checked; }); }

  function refresh() {
    const all = boxes();
    const picked = checked();
    const n = matching ? total : picked.length;
    pageBox.checked = all.length > 0 && picked.length === all.length;
    pageBox.indeterminate = picked.length > 0 && picked.length < all.length;
    state.textContent = matching ? 'All ' + plural(total, 'job') + ' matching the filter selected'
      : (n ? plural(n, 'job') + ' selected' : 'No jobs selected');
    selectAll.hidden = matching || !pageBox.checked || total <= all.length || !bar.dataset.filter;
    clear.hidden = !n;
    for (const b of bar.querySelectorAll('[data-bulk-action]')) b.disabled = !n;
    bar.classList.toggle('bulk-active', n > 0);
  }

  table.addEventListener('change', function (event) {
    if (event.target === pageBox) {
      for (const b of boxes()) b.checked = pageBox.checked;
    }
    if (!pageBox.checked) matching = false;
    refresh();
  });
  selectAll.addEventListener('click', function () { matching = true; refresh(); });
  clear.addEventListener('click', function () {
    matching = false;
    for (const b of boxes()) b.checked = false;
    refresh();
  });

  /* The chosen jobs as {id, status}: the checked rows, or every job the filter matches. */
  async function chosen() {
    if (matching) return allMatching(readFilter(bar));
    return checked().map(function (b) {
      const tr = b.closest('tr');
      return {id: Number(tr.dataset.jobId), status: tr.dataset.status};
    });
  }

  function skippedNote(skipped, all, verb) {
    return skipped ? ' ' + skipped + ' of the ' + all + ' selected cannot be ' + verb +
      ' and stay as they are.' : '';
  }

  async function bulk(action) {
    const jobs = await chosen();
    const allowed = action === 'cancel' ? J.CANCELABLE : J.REQUEUEABLE;
    const ids = jobs.filter(function (j) { return allowed.includes(j.status); })
      .map(function (j) { return j.id; });
    const verb = action === 'cancel' ? 'canceled' : 'requeued';
    if (!ids.length) {
      J.showMessage('None of the ' + plural(jobs.length, 'selected job') + ' can be ' + verb + '.', 'error');
      return;
    }
    const skipped = jobs.length - ids.length;
    if (action === 'cancel') {
      if (!window.confirm('Cancel ' + plural(ids.length, 'job') + '?' +
          skippedNote(skipped, jobs.length, verb) + ' Running executions are stopped.')) return;
      const done = await cancelAll(ids);
      J.showMessage('Canceled ' + plural(done.canceled, 'job') + '.' + (done.failures.length
        ? ' ' + done.failures.length + ' could not be: ' + done.failures[0] : ''),
      done.failures.length ? 'error' : 'ok');
    } else {
      if (!window.confirm('Requeue ' + plural(ids.length, 'job') + '?' +
          skippedNote(skipped, jobs.length, verb))) return;
      const done = await requeue({job_ids: ids});
      J.showMessage('Requeued ' + plural(done.requeued, 'job') + '.', 'ok');
    }
    matching = false;
    for (const b of boxes()) b.checked = false;
    refresh();
  }

  for (const button of bar.querySelectorAll('[data-bulk-action]')) {
    button.addEventListener('click', async function () {
      button.disabled = true;
      try { await bulk(button.dataset.bulkAction); } catch (err) { J.showMessage(err.message, 'error'); }
      refresh();
    });
  }
  refresh();
}());
