// Entry point of the demo's loan application.  Plain ES modules, no bundler:
// `unblank build` rewrites these relative specifiers to fingerprinted names.
import { renderForm } from "./form.js";
import { formatMoney } from "./money.js";

const root = document.getElementById("root");

function header() {
  const el = document.createElement("header");
  el.innerHTML = '<span class="logo" aria-hidden="true"></span><strong>Northwind Loans</strong>';
  return el;
}

async function showReport(application) {
  // Loaded only when asked for: after a deploy this chunk must still exist.
  const { renderReport } = await import("./report.js");
  renderReport(root.querySelector("main"), application, formatMoney);
}

const hero = document.createElement("div");
hero.className = "hero";
root.append(header(), hero);
renderForm(root, showReport);
window.unblank?.ready?.();
