/* Load the widget once the page has loaded and painted its largest element: the launcher is not part of that paint,
   so its files must not compete with the shop's own for the network or the main thread
   (docs/widget-performance.md). The stylesheet comes first, so the launcher never shows unstyled. */
(function (w, d) {
  function go() {
    var root = d.getElementById('loyalty-widget-root');
    if (!root || root.dataset.lwLoading) return;
    root.dataset.lwLoading = '1';
    var css = d.createElement('link');
    css.rel = 'stylesheet';
    css.href = root.dataset.css;
    css.onload = css.onerror = function () {
      var js = d.createElement('script');
      js.src = root.dataset.js;
      d.head.appendChild(js);
    };
    d.head.appendChild(css);
  }
  function idle() {
    if (w.requestIdleCallback) w.requestIdleCallback(go, { timeout: 1500 });
    else w.setTimeout(go, 200);
  }
  function afterLargestPaint() {
    /* Browsers without Largest Contentful Paint entries, or a page that never reports one, wait 3 s at most. */
    var done = false;
    var timer = w.setTimeout(fire, 3000);
    function fire() {
      if (done) return;
      done = true;
      w.clearTimeout(timer);
      idle();
    }
    try {
      new PerformanceObserver(function (list, observer) { observer.disconnect(); fire(); })
        .observe({ type: 'largest-contentful-paint', buffered: true });
    } catch (e) { fire(); }
  }
  if (d.readyState === 'complete') afterLargestPaint(); else w.addEventListener('load', afterLargestPaint);
})(window, document);
