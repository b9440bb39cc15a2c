// Keeps the mail page's "Processing now" count live. The page works without it: the count is then
// the one of page load.
(function () {
  'use strict';
  var el = document.getElementById('processing-count');
  if (!el || !window.fetch) return;
  var url = el.getAttribute('data-live');
  function tick() {
    fetch(url, { credentials: 'same-origin', headers: { accept: 'application/json' } })
      .then(function (r) {
        return r.ok ? r.json() : null;
      })
      .then(function (body) {
        if (body && typeof body.processing === 'number') el.textContent = String(body.processing);
      })
      .catch(function () {
        /* offline for a moment: keep the last count */
      });
  }
  setInterval(tick, 5000);
})();
