(function () {
  // Retry policy of a guided page: a visible, pausable countdown with backoff
  // (WCAG 2.2.1), Retry-After honoured, "online" for the offline page.
  var doc = document, root = doc.documentElement, data = root.dataset;
  var main = doc.getElementById("main-action"), pause = doc.getElementById("pause");
  var status = doc.getElementById("status"), text = {};
  try { text = JSON.parse(doc.getElementById("unblank-page-text").textContent); } catch (e) {}
  if (main) main.focus();
  if (data.retry === "none" || !main) return;
  // Retries of this path in the last ten minutes: older failures do not count.
  var key = "unblank-retry:" + location.pathname, tries = 0, now = Date.now();
  try {
    var seen = JSON.parse(sessionStorage.getItem(key) || "null");
    if (seen && now - seen.at < 600000) tries = +seen.n || 0;
  } catch (e) {}
  // Exponential backoff from the server's Retry-After (else the reason's
  // wait), capped at five minutes unless Retry-After asks for longer.
  var base = data.retryAfter ? Math.max(+data.retryAfter, 1) : (+data.wait || 10);
  var wait = Math.min(base * Math.pow(2, tries), 300);
  if (data.retryAfter) wait = Math.max(wait, +data.retryAfter);
  var left = Math.ceil(wait), paused = false, timer = null;
  function say(message) { status.textContent = message; }
  function again() {
    if (data.retry === "online" && !navigator.onLine) { say(text.waiting_online); return; }
    try { sessionStorage.setItem(key, JSON.stringify({ n: tries + 1, at: Date.now() })); } catch (e) {}
    say(text.retrying);
    // A GET of the same address: never re-sends a form (reload() would). With a
    // #fragment that would only scroll: the page came from a GET, reload it.
    if (location.hash) location.reload();
    else location.replace(location.href);
  }
  function show() { main.textContent = text.retry_now + " (" + left + ")"; }
  function tick() {
    if (paused) return;
    left -= 1;
    if (left <= 0) { clearInterval(timer); again(); return; }
    show();
  }
  main.addEventListener("click", function (event) { event.preventDefault(); again(); });
  if (data.retry === "online") {
    window.addEventListener("online", again);
    if (!navigator.onLine) { say(text.waiting_online); return; }
  }
  pause.hidden = false;
  pause.addEventListener("click", function () {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? text.resume : text.pause;
    say(paused ? text.paused : text.retrying_in.replace("{seconds}", left));
  });
  say(text.retrying_in.replace("{seconds}", left));
  show();
  timer = setInterval(tick, 1000);
})();
