// unblank's watchdog: inline in the shell's <head>, before anything else, no
// dependencies.  Shipped as written minus comment lines and indentation (see
// unblank.shell.watchdog_source), so: one statement per line, no block
// comments, no multi-line strings.  C is the config the shell renders:
// generation, base, mirrors, report, ready, assetTimeout, retryFor,
// crashGrace, root, param, reference.
((w, d, C) => {
  if (w.unblank?.config) return;
  const nav = w.navigator, loc = w.location, perf = w.performance, P = C.param, KEY = "unblank-reload";
  const now = () => Date.now(), t0 = perf.timeOrigin || now();
  const abs = u => new URL(u, loc.href).href;
  const bases = [C.base, ...C.mirrors].map(abs);
  const ours = u => bases.some(b => u.startsWith(b));
  const tries = {}, done = new WeakSet(), seen = new WeakMap();
  const S = { ready: false, failed: null, errors: [], pending: 0, incidents: [] };
  let crashTimer, checking = 0, chunk = 0, reloading = 0;
  w.unblank = { ready, report, fail: show, state: S, config: C };
  const of = "data-unblank-of", dyn = "data-unblank-dyn";
  const resources = () => perf.getEntriesByType("resource");

  // -- which elements are ours, and where else they can come from -----------
  const urlOf = el => (el.tagName === "SCRIPT" ? el.src : el.tagName === "LINK" ? el.href : "");
  const kindOf = el => (el.tagName === "SCRIPT" ? "script" : /modulepreload/.test(el.rel) ? "modulepreload" : "stylesheet");
  function watched(el) {
    const u = urlOf(el);
    if (!u || (el.tagName === "LINK" && !/stylesheet|modulepreload|preload/i.test(el.rel))) return false;
    return el.hasAttribute("integrity") || ours(u);
  }
  const strip = u => u.replace(new RegExp("([?&])" + P + "=\\d+&?"), "$1").replace(/[?&](#|$)/, "$1");
  const bust = u => u + (u.includes("?") ? "&" : "?") + P + "=" + now();
  function candidates(u) {
    const rest = u.startsWith(bases[0]) ? u.slice(bases[0].length) : null;
    return (rest === null ? [] : bases.slice(1).map(m => m + rest)).concat([bust(u)]);
  }

  // -- asset failures: retry from mirrors, then with a cache-busting URL ----
  function onAssetError(el) {
    if (S.failed || done.has(el)) return;
    done.add(el);
    const orig = el.getAttribute(of) || urlOf(el);
    const t = tries[orig] || (tries[orig] = { n: 0, first: now(), list: candidates(orig) });
    if (el.hasAttribute(of)) S.pending--;
    purge([orig]);
    if (t.n < t.list.length && now() - t.first < C.retryFor) return retry(el, orig, t.list[t.n++]);
    const info = { asset: orig, attempts: t.n, kind: kindOf(el) };
    classify(orig).then(cause => giveUp(cause, info));
  }
  function retry(el, orig, url) {
    const n = d.createElement(el.tagName), script = el.tagName === "SCRIPT";
    for (const a of el.attributes) if (!/^(src|href|nonce|on\w+|data-unblank-\w+)$/.test(a.name)) n.setAttribute(a.name, a.value);
    n.setAttribute(of, orig);
    if (el.nonce) n.setAttribute("nonce", el.nonce);
    n.setAttribute(script ? "src" : "href", url);
    S.pending++;
    // A parser-blocking script failed while the parser waits on it: written at
    // the insertion point, the retry keeps every later script behind it.
    if (script && el.type !== "module" && d.readyState === "loading" && !el.async && !el.defer && !el.hasAttribute(dyn)) return d.write(n.outerHTML);
    n.setAttribute(dyn, "");
    if (script) n.async = false;
    (el.parentNode || d.head).insertBefore(n, el.nextSibling);
  }
  function loaded(el) {
    if (done.has(el)) return;
    done.add(el);
    const orig = el.getAttribute(of);
    if (!orig) return;
    S.pending--;
    const info = { asset: orig, attempts: tries[orig] ? tries[orig].n : 1, kind: kindOf(el) };
    classify(orig).then(cause => report(cause, info, "recovered"));
  }

  // -- why it failed: a fresh look at the URL, then at the page's own origin -
  const timed = (u, o, ms) => fetch(u, { ...o, signal: AbortSignal.timeout(ms || 4000) });
  const fresh = { cache: "no-store", mode: "cors", credentials: "same-origin" };
  function classify(u) {
    if (nav.onLine === false) return Promise.resolve("offline");
    // A file the page fetched that answered 4xx/5xx (a module's import, say) says more.
    const bad = resources().find(e => e.responseStatus >= 400 && ours(e.name));
    return timed(u, fresh).then(
      r => {
        const s = bad ? bad.responseStatus : r.status;
        if (s === 404 || s === 410) return "not-found";
        if (s >= 400) return "upstream";
        return /html/.test(r.headers.get("content-type")) ? "not-found" : "integrity";
      },
      () => timed(C.report, { method: "HEAD", cache: "no-store" }).then(() => "upstream", () => "offline")
    );
  }

  // -- copies that may be bad: Cache Storage, service workers, the HTTP cache -
  async function purge(urls, all) {
    try {
      for (const name of await caches.keys()) {
        const c = await caches.open(name);
        for (const r of await c.keys()) if (urls.includes(r.url.split("?")[0]) || (all && ours(r.url))) await c.delete(r);
      }
    } catch (e) {}
  }
  function integrityMap() {
    const map = {};
    for (const s of d.querySelectorAll("script[type=importmap]")) {
      try {
        const m = JSON.parse(s.textContent).integrity || {};
        for (const k in m) map[abs(k)] = m[k];
      } catch (e) {}
    }
    for (const el of d.querySelectorAll("[integrity]")) map[urlOf(el)] = el.getAttribute("integrity");
    return map;
  }
  function cleanup(urls) {
    const jobs = [purge(urls, true)], sri = integrityMap();
    if (nav.serviceWorker) jobs.push(nav.serviceWorker.getRegistrations().then(rs => Promise.all(rs.map(r => r.unregister()))));
    // A corrupted copy in the HTTP cache (immutable!) would come back after the
    // reload: every verified file this page fetched is checked there, and
    // fetched again when it no longer matches.
    for (const { name } of resources()) if (sri[name]) jobs.push(fetch(name, { integrity: sri[name], cache: "force-cache" }).catch(() => fetch(name, { cache: "reload" })));
    for (const u of urls) jobs.push(fetch(u, { cache: "reload" }));
    const all = Promise.all(jobs.map(j => j.catch(() => 0)));
    return Promise.race([all, new Promise(r => setTimeout(r, 3000))]);
  }

  // -- one guarded reload, then the guided page --------------------------------
  // This load is the reload (the URL says so until ready()), or the same thing
  // failed again within a minute of a reload for it: no second reload.
  function reloaded(what) {
    const m = new RegExp("[?&]" + P + "=(\\d+)").exec(loc.search);
    let last = {};
    try { last = JSON.parse(sessionStorage.getItem(KEY)) || {}; } catch (e) {}
    return (m && Math.abs(now() - m[1]) < 60000) || (last.what === what && now() - last.at < 60000);
  }
  function giveUp(cause, info) {
    if (S.failed || reloading) return;
    const what = info.asset || cause;
    if (cause === "offline" || reloaded(what)) return show(cause, info);
    reloading = 1;
    try { sessionStorage.setItem(KEY, JSON.stringify({ at: now(), what })); } catch (e) {}
    report(cause, info, "reloading");
    cleanup(info.asset ? [info.asset] : []).then(() => loc.replace(bust(strip(loc.href).split("#")[0]) + loc.hash));
  }
  function show(cause, info) {
    if (S.failed) return;
    S.failed = cause;
    report(cause, info, "page");
    const base = d.getElementById("unblank-fallback"), tpl = d.querySelector(`template[data-unblank-reason="${cause}"]`);
    w.stop();
    const html = d.documentElement, body = d.body || html.appendChild(d.createElement("body"));
    for (const n of d.querySelectorAll('link[rel~="stylesheet"],style')) n.remove();
    for (const a of ["class", "style"]) html.removeAttribute(a), body.removeAttribute(a);
    body.textContent = "";
    if (!tpl || !base) return (body.textContent = cause);
    html.lang = base.dataset.locale;
    html.dir = base.dataset.dir;
    html.dataset.unblank = cause;
    html.dataset.retry = tpl.dataset.retry;
    html.dataset.wait = tpl.dataset.wait;
    d.title = tpl.dataset.title;
    body.append(d.importNode(tpl.content, true), d.importNode(base.content, true));
  }

  // -- reports ------------------------------------------------------------------
  function report(cause, info = {}, outcome) {
    const r = { cause, outcome, ...info, generation: C.generation, page: loc.href, reference: C.reference, timings: { elapsed: Math.round(now() - t0) } };
    S.incidents.push(r);
    nav.onLine === false ? outbox([r]) : send([r]);
  }
  // Offline, a beacon is lost: it waits in localStorage for the network (or the next load).
  function send(list) {
    try { for (const r of list) nav.sendBeacon(C.report, JSON.stringify(r)); } catch (e) {}
  }
  function outbox(add) {
    let list = [];
    try {
      list = JSON.parse(localStorage.getItem("unblank-outbox")) || [];
      localStorage.setItem("unblank-outbox", add ? JSON.stringify(list.concat(add).slice(-10)) : "[]");
    } catch (e) {}
    return list;
  }

  // -- boot exceptions and chunk loads --------------------------------------
  const urlIn = m => (/https?:\/\/[^\s'"]+/.exec(m) || [""])[0];
  const message = e => String(e?.message || e?.name || e || "").slice(0, 500);
  function onCrash(err) {
    const m = message(err);
    if (/dynamically imported module|Importing a module script failed|Loading (CSS )?chunk|ChunkLoadError/.test(m)) return onChunk(m);
    if (S.ready || S.failed) return;
    S.errors.push(m);
    clearTimeout(crashTimer);
    crashTimer = setTimeout(() => !S.ready && !S.pending && d.readyState === "complete" && blank() && giveUp("app-crash", { kind: "boot", message: S.errors[0] }), C.crashGrace);
  }
  function onChunk(m) {
    if (chunk || S.failed) return;
    chunk = 1;
    const u = urlIn(m);
    const info = { asset: u, kind: "chunk", message: m };
    (u ? classify(u) : Promise.resolve(nav.onLine ? "not-found" : "offline")).then(cause => giveUp(cause, info));
  }

  // -- a white screen: nothing drawn where people look ----------------------------
  function drawn(el) {
    if (el === d.documentElement || el === d.body || !el.getClientRects().length || el.closest("[data-unblank-placeholder]")) return false;
    if (!(el instanceof HTMLElement) || /^(IMG|CANVAS|VIDEO|INPUT|BUTTON|SELECT|TEXTAREA|IFRAME|OBJECT|EMBED)$/.test(el.tagName)) return true;
    for (const n of el.childNodes) if (n.nodeType === 3 && /\S/.test(n.data)) return true;
    const s = getComputedStyle(el), bg = s.backgroundColor;
    return s.backgroundImage !== "none" || (bg !== getComputedStyle(d.body).backgroundColor && !/^(transparent|rgba\(.*, 0\))$/.test(bg));
  }
  // The app's root, when the page has one, must hold something drawn (the shell
  // around it does not count); without one, a grid of points over the viewport.
  function blank() {
    const root = d.querySelector(C.root);
    if (root) return ![...root.querySelectorAll("*")].slice(0, 3000).some(drawn);
    for (let i = 1; i < 6; i++) for (let j = 1; j < 6; j++) if (d.elementsFromPoint((innerWidth * i) / 6, (innerHeight * j) / 6).some(drawn)) return false;
    return true;
  }
  function check() {
    if (S.ready || S.failed) return;
    if (d.visibilityState === "hidden") {
      // Background tabs render late, if at all: look again once it is seen.
      return d.addEventListener("visibilitychange", () => setTimeout(check, C.ready / 2), { once: true });
    }
    // Something drawn is no white screen; still loading, it may yet be drawn.
    if (!blank()) return;
    if ((S.pending > 0 || d.readyState !== "complete") && now() - t0 < C.ready * 3) return setTimeout(check, 1000);
    giveUp(S.errors.length ? "app-crash" : "render-timeout", { kind: "render", message: S.errors[0] });
  }

  // -- assets that never answer ---------------------------------------------------
  function hangs() {
    if (S.ready || S.failed) return;
    for (const el of d.querySelectorAll("script[src],link[href]")) {
      if (done.has(el) || !watched(el) || el._ubProbe) continue;
      if (!seen.has(el)) seen.set(el, checking ? now() : t0);
      if (now() - seen.get(el) < C.assetTimeout) continue;
      el._ubProbe = 1;
      // Still loading: a slow network answers a probe's headers; a hung origin does not.
      const slow = () => (seen.set(el, now()), (el._ubProbe = 0));
      timed(urlOf(el), fresh, C.assetTimeout / 2).then(slow, () => onAssetError(el));
    }
    checking = 1;
    setTimeout(hangs, 1000);
  }

  function ready() {
    if (S.ready) return;
    S.ready = true;
    clearTimeout(crashTimer);
    // The URL keeps its reload mark where sessionStorage cannot: the only guard left.
    try { if (sessionStorage && loc.search.includes(P + "=")) history.replaceState(history.state, "", strip(loc.href)); } catch (e) {}
  }

  w.addEventListener("error", e => {
    const el = e.target;
    if (el && el !== w && el.tagName) watched(el) && onAssetError(el);
    else onCrash(e.error || e.message);
  }, true);
  // Load events never reach window (DOM "get the parent" stops at the document for them).
  d.addEventListener("load", e => e.target.tagName && loaded(e.target), true);
  w.addEventListener("unhandledrejection", e => onCrash(e.reason));
  w.addEventListener("online", () => send(outbox()));
  if (nav.onLine) send(outbox());
  w.addEventListener("vite:preloadError", e => {
    const m = message(e.payload);
    // A stylesheet being retried in place: let the import go on without it for now.
    if (tries[urlIn(m)]) return e.preventDefault();
    onChunk(m);
  });
  setTimeout(check, C.ready);
  setTimeout(hangs, C.assetTimeout);
})(window, document, __UNBLANK_CONFIG__);
