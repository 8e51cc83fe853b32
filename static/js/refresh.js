/* Overview and queue: re-renders the server-side region (escaped by Jinja2) when live updates
   arrive, at most once a second, and every 10 seconds anyway; then tells the page's other parts
   (static/js/charts.js) with a `jobdeck:refreshed` event. */
(function () {
  'use strict';
  const J = window.Jobdeck;
  const region = document.querySelector('[data-refresh]');
  if (!region) return;
  const EVERY_MS = 10000;
  const AT_MOST_MS = 1000;
  let last = 0;
  let queued = null;
  let live = null;

  async function refresh() {
    queued = null;
    if (live && live.isPaused()) return;
    last = Date.now();
    let response;
    try {
      response = await fetch(region.dataset.refresh, {headers: {Accept: 'text/html'}});
    } catch (err) {
      J.showMessage('Refreshing failed: the server could not be reached.', 'error');
      return;
    }
    if (!response.ok) {
      J.showMessage('Refreshing failed: ' + (await response.text()).trim(), 'error');
      return;
    }
    const html = await response.text();
    region.innerHTML = html;
    J.showMessage('');
    document.dispatchEvent(new CustomEvent('jobdeck:refreshed'));
  }

  function soon() {
    if (queued !== null) return;
    queued = window.setTimeout(refresh, Math.max(0, last + AT_MOST_MS - Date.now()));
  }

  live = J.live({
    params: {}, started: region.dataset.started, onUpdates: soon,
    fallback: 'refreshing every 10 s',
    onState: function (state) { if (state === 'live') soon(); },
  });
  last = Date.now();
  window.setInterval(soon, EVERY_MS);
}());
