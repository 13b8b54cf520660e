// The chaos panel: draws a switch per fault from the demo's state, flips them
// through the JSON API, and looks at the state again every second (switches
// flipped elsewhere, incidents reported by browsers).  Everything that comes
// from the state is set as text, never as HTML: incident reports come from
// browsers, and browsers can send anything.
"use strict";

const API = "/_demo/api";
const WORKER = "/_demo/offline-sw.js";
const $ = (id) => document.getElementById(id);
let drawn = false;
let workerSync = Promise.resolve();

function say(text) {
  $("status").textContent = text;
}

async function post(path, body) {
  const response = await fetch(API + path, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(body || {}),
  });
  const answer = await response.json().catch(() => null);
  if (!response.ok) throw new Error((answer && answer.detail) || `The demo answered ${response.status}.`);
  return answer;
}

function element(tag, attributes, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// -- switches -------------------------------------------------------------------

function drawSwitches(switches) {
  const list = $("switches");
  for (const [name, item] of Object.entries(switches)) {
    const row = element("li", { class: "switch", "data-name": name });
    const head = element("div", { class: "switch-head" });
    const button = element("button", {
      type: "button",
      role: "switch",
      id: `switch-${name}`,
      "aria-checked": "false",
      "aria-describedby": `does-${name} see-${name}`,
    });
    const track = element("span", { class: "track", "aria-hidden": "true" });
    track.append(element("span", { class: "knob" }));
    button.append(track, element("span", { class: "label" }, item.label));
    button.append(element("span", { class: "state", "aria-hidden": "true" }, "off"));
    button.addEventListener("click", () => flip(name, button, item.label));
    head.append(button);
    if (item.setting) {
      const setting = element("span", { class: "setting" });
      const input = element("input", {
        type: "number",
        id: `value-${name}`,
        min: item.setting.low,
        max: item.setting.high,
        step: 1,
        value: item.setting.value,
      });
      setting.append(element("label", { for: `value-${name}` }, item.setting.unit), input);
      head.append(setting);
    }
    if (name === "overload") head.append(element("span", { class: "note", id: "overload-left" }));
    row.append(head, element("p", { class: "does", id: `does-${name}` }, item.does));
    const see = element("p", { class: "see", id: `see-${name}` });
    see.append(element("strong", {}, "In the app tab: "), item.see);
    row.append(see);
    list.append(row);
  }
}

async function flip(name, button, label) {
  const on = button.getAttribute("aria-checked") !== "true";
  const body = { on };
  const input = $(`value-${name}`);
  if (input && on) body.value = Number(input.value);
  button.setAttribute("aria-busy", "true");
  button.disabled = true;
  try {
    show(await post(`/switches/${name}`, body));
    say(`${label}: ${on ? "on" : "off"}.`);
  } catch (failure) {
    // The server's message may name the switch already ("Slow network: seconds must be …").
    const text = failure.message.startsWith(`${label}:`) ? failure.message : `${label}: ${failure.message}`;
    say(text);
    alertUser(text);
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

// -- the state --------------------------------------------------------------------

function show(state) {
  if (!drawn) {
    drawSwitches(state.switches);
    drawn = true;
  }
  $("version").textContent = String(state.version);
  $("generation").textContent = state.generation;
  $("origin").textContent = describe(state.servers["asset origin"]);
  $("mirror").textContent = describe(state.servers.mirror);
  const on = [];
  for (const [name, item] of Object.entries(state.switches)) {
    const button = $(`switch-${name}`);
    button.setAttribute("aria-checked", String(item.on));
    button.querySelector(".state").textContent = item.on ? "on" : "off";
    if (item.on) on.push(item.label);
  }
  $("on").textContent = on.length ? on.join(", ") : "none";
  const left = state.switches.overload.left;
  $("overload-left").textContent = left ? `${left} page load${left === 1 ? "" : "s"} still to shed` : "";
  showIncidents(state.incidents);
  const canary = $("canary");
  canary.disabled = !state.canary.available;
  $("canary-note").textContent = state.canary.note;
  showRollout(state.canary.rollout);
  syncWorker(state.switches.offline.on);
}

const short = (generation) => (generation ? generation.slice(-8) : "none");

function showRollout(rollout) {
  $("rollout").hidden = !rollout;
  if (!rollout) return;
  const verdict = rollout.verdict ? ` (policy: ${rollout.verdict.action})` : "";
  $("rollout-state").textContent = rollout.error || rollout.state + verdict;
  $("rollout-stable").textContent = short(rollout.stable);
  const canary = rollout.canary;
  $("rollout-canary").textContent = canary
    ? `${short(canary.generation)} for ${canary.percent}% of browsers, for ${canary.elapsed} s`
    : "none running";
  const counts = (rollout.generations || [])
    .filter((g) => g.role !== "other")
    .map((g) => `${g.role} ${g.page_views} page views, ${g.incidents} incidents`);
  $("rollout-counts").textContent = counts.length ? counts.join("; ") : "none yet";
  const last = rollout.decision;
  $("rollout-decision").textContent = last
    ? `${last.at}: ${last.action === "rollback" ? "rolled back" : "promoted"} ${short(last.canary)} ` +
      `by ${last.actor}: ${last.reason}`
    : "none yet";
}

function describe(server) {
  return `${server.url}/static/ (${server.running ? "running" : "stopped: connections refused"})`;
}

function showIncidents(incidents) {
  $("no-incidents").hidden = incidents.length > 0;
  $("incidents-table").hidden = incidents.length === 0;
  const rows = incidents.map((incident) => {
    const row = element("tr");
    const what = incident.asset || incident.message || incident.kind || "";
    const generation = incident.generation ? incident.generation.slice(-8) : "";
    for (const text of [incident.at, incident.cause, incident.outcome || "", what, generation]) {
      row.append(element("td", {}, text));
    }
    return row;
  });
  $("incidents").replaceChildren(...rows);
}

function alertUser(text) {
  const box = $("connection");
  box.textContent = text;
  box.hidden = !text;
}

async function refresh() {
  try {
    const response = await fetch(`${API}/state`, { cache: "no-store" });
    if (!response.ok) throw new Error(`The demo answered ${response.status}.`);
    show(await response.json());
    if ($("connection").dataset.down) {
      delete $("connection").dataset.down;
      alertUser("");
    }
  } catch (failure) {
    $("connection").dataset.down = "1";
    alertUser("The demo is not answering: is it still running? (make demo)");
  }
}

// -- the offline switch's service worker -------------------------------------------

// Registered while "offline" is on, unregistered when it is off; the page's
// <html data-offline-worker> says where that stands ("on", "off", "none").
function syncWorker(offline) {
  workerSync = workerSync.then(async () => {
    const root = document.documentElement;
    if (!("serviceWorker" in navigator)) {
      root.dataset.offlineWorker = "none";
      return;
    }
    const registrations = await navigator.serviceWorker.getRegistrations();
    const ours = registrations.filter((r) =>
      [r.active, r.waiting, r.installing].some((w) => w && new URL(w.scriptURL).pathname === WORKER)
    );
    if (offline && !ours.length) {
      await navigator.serviceWorker.register(WORKER, { scope: "/" });
      await navigator.serviceWorker.ready;
    } else if (!offline) {
      await Promise.all(ours.map((r) => r.unregister()));
    }
    root.dataset.offlineWorker = offline ? "on" : "off";
  }).catch((failure) => {
    document.documentElement.dataset.offlineWorker = "none";
    say(`The offline switch needs a service worker: ${failure.message}`);
  });
}

// -- buttons ------------------------------------------------------------------------

async function act(button, path, busy, done) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  say(busy);
  try {
    const answer = await post(path);
    say(done(answer));
    await refresh();
  } catch (failure) {
    say(failure.message);
    alertUser(failure.message);
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

$("deploy").addEventListener("click", (event) =>
  act(event.currentTarget, "/deploy", "Deploying the next version…", (a) => `Version ${a.version} is live.`)
);
$("reset").addEventListener("click", (event) =>
  act(event.currentTarget, "/reset", "Switching every fault off…", () => "Every fault is off.")
);
$("canary").addEventListener("click", (event) =>
  act(event.currentTarget, "/canary", "Deploying a broken canary…", (a) => `Canary ${a.generation} is out.`)
);

refresh();
setInterval(refresh, 1000);
