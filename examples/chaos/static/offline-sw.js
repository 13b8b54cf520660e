// The demo's "offline" switch, in this browser.  While the switch is on, every
// request of this origin's pages fails the way it does with no network — the
// app's files, its API calls, the watchdog's probes and reports — except the
// page itself (an app whose own service worker keeps its shell gets that far
// offline too) and the chaos panel.  A server cannot take a browser offline;
// DevTools' Network panel, "Offline", is the real thing.
//
// The panel registers this worker when the switch goes on.  While offline it
// asks the demo for the switch at every request (switched off, the very next
// request goes through); once the switch is off it unregisters itself, and
// requests in the FRESH ms before that go straight to the network.
const SWITCH = "/_demo/api/offline";
const FRESH = 500;
let known = { offline: true, at: 0 };

function look() {
  return fetch(SWITCH, { cache: "no-store" })
    .then((response) => response.json())
    .then((state) => state.offline === true, () => false)
    .then((offline) => {
      known = { offline, at: Date.now() };
      if (!offline) self.registration.unregister(); // its work is done
      return offline;
    });
}

self.addEventListener("install", () => self.skipWaiting());
// Pages opened before the switch went on are taken over too: "offline" reaches
// the app tab that is already open.
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.mode === "navigate") return;
  if (url.origin === location.origin && url.pathname.startsWith("/_demo/")) return;
  if (!known.offline && Date.now() - known.at < FRESH) return;
  event.respondWith(look().then((offline) => (offline ? Response.error() : fetch(request))));
});
