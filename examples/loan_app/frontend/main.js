// Northwind Loans: the entry module.  It draws the application into #app and
// then tells unblank's watchdog that the page is ready.
//
// Plain ES modules, no bundler: `unblank build` rewrites the relative
// specifiers ("./loan.js", import("./report.js")) to fingerprinted names.
//
// <html data-chaos="..."> (space-separated words the backend renders) makes
// the app misbehave on purpose, so that the demo and the browser fault matrix
// can show what the watchdog does about it:
//   boot-exception  throw while starting, before anything is drawn
//   never-render    start, draw nothing and never call unblank.ready()
import { chaos, mountApp } from "./loan.js";

if (chaos("boot-exception")) {
  throw new Error("chaos: the loan app threw while starting");
}
if (!chaos("never-render")) {
  mountApp(document.getElementById("app"));
  // Without the watchdog (the app served some other way) there is no one to tell.
  window.unblank?.ready();
}
