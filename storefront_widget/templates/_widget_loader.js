/* Load the widget once the page has loaded: the launcher is not part of the page's first paint, so its files must
   not compete with the shop's own for the network or the main thread (docs/widget-performance.md). The stylesheet
   comes first, so the launcher never shows unstyled. */
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
  if (d.readyState === 'complete') idle(); else w.addEventListener('load', idle);
})(window, document);
