// The application form: amount and term in, a quote from the backend's JSON
// API out.  Shared by the entry (main.js) and the lazy report view (report.js).

const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
export const formatMoney = (value) => money.format(Number(value));

export const TERMS = [12, 24, 36, 48, 60, 72, 84];

// The version the footer shows.  The demo's "Deploy new version" rewrites this
// line in its own copy of the front end (examples/chaos/releases.py), so that
// every deploy changes the files and a new generation is published.
export const VERSION = "1";

export function chaos(name) {
  return (document.documentElement.dataset.chaos || "").split(/\s+/).includes(name);
}

// A problem+json answer (RFC 9457) of the API, as an Error the form can show.
export class QuoteError extends Error {
  constructor(problem, status) {
    super((problem && (problem.detail || problem.title)) || `The quote service answered ${status}.`);
    this.problem = problem || {};
  }
}

export async function requestQuote(amount, term) {
  const response = await fetch("/api/quote", {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify({ amount, term }),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok || !body) throw new QuoteError(body, response.status);
  return body;
}

let form;
let lastQuote = null;

// What the form says now: the last quote when it is for these numbers, else a new one.
export function currentQuote() {
  const { amount, term } = readForm();
  if (lastQuote && lastQuote.amount === amount && lastQuote.term === term) {
    return lastQuote.promise;
  }
  const promise = requestQuote(amount, term);
  lastQuote = { amount, term, promise };
  promise.catch(() => (lastQuote = null));
  return promise;
}

function readForm() {
  return { amount: form.elements.amount.value.trim(), term: Number(form.elements.term.value) };
}

export function mountApp(root) {
  const terms = TERMS.map(
    (n) => `<option value="${n}"${n === 36 ? " selected" : ""}>${n} months</option>`
  ).join("");
  root.innerHTML = `
    <header class="masthead">
      <span class="logo" role="img" aria-label="Northwind Loans logo"></span>
      <span class="brand">Northwind Loans</span>
    </header>
    <main id="rendered" class="loan" aria-labelledby="title">
      <h1 id="title">Apply for a personal loan</h1>
      <p class="lead">Tell us how much you need and for how long: you see your monthly payment at once.</p>
      <form id="quote-form" novalidate>
        <div class="field">
          <label for="amount">Loan amount (US dollars)</label>
          <input id="amount" name="amount" inputmode="decimal" autocomplete="off"
                 value="12000" required aria-describedby="amount-help">
          <p id="amount-help" class="help">From $1,000 to $50,000.</p>
        </div>
        <div class="field">
          <label for="term">Term</label>
          <select id="term" name="term">${terms}</select>
        </div>
        <button id="get-quote" type="submit">Get a quote</button>
      </form>
      <section class="quote" aria-labelledby="quote-title">
        <h2 id="quote-title">Your quote</h2>
        <p id="quote" aria-live="polite">Choose an amount and a term, then ask for a quote.</p>
        <p id="quote-error" class="error" role="alert" hidden></p>
      </section>
      <button id="open-report" class="secondary" type="button">Open the repayment report</button>
      <section id="report-slot" aria-live="polite"></section>
    </main>
    <footer class="footer"><p id="version"></p></footer>`;
  root.querySelector("#version").textContent = versionLine();
  form = root.querySelector("#quote-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    showQuote(root);
  });
  root.querySelector("#open-report").addEventListener("click", openReport);
  addEventListener("hashchange", () => location.hash === "#report" && openReport());
  if (location.hash === "#report") openReport();
}

// "Version 2 · generation 20261125T…": the generation is the one the shell
// named (the watchdog's config), so a page shows what it really runs.
function versionLine() {
  const generation = window.unblank?.config?.generation;
  return `Northwind Loans · version ${VERSION}` + (generation ? ` · generation ${generation}` : "");
}

async function showQuote(root) {
  const button = root.querySelector("#get-quote");
  const out = root.querySelector("#quote");
  const error = root.querySelector("#quote-error");
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  error.hidden = true;
  for (const input of form.elements) input.removeAttribute("aria-invalid");
  try {
    const quote = await currentQuote();
    out.textContent =
      `${formatMoney(quote.monthly_payment)} a month for ${quote.term} months ` +
      `at ${quote.annual_rate}% a year: ${formatMoney(quote.total_repaid)} in all.`;
    out.dataset.monthly = quote.monthly_payment;
  } catch (failure) {
    // A failed API call is the app's to explain; the page itself stays.
    error.textContent =
      failure instanceof QuoteError ? failure.message : "We could not reach the quote service. Please try again.";
    error.hidden = false;
    for (const item of (failure.problem && failure.problem.errors) || []) {
      const field = form.elements[(item.pointer || "").replace("#/", "") || item.parameter];
      if (field) field.setAttribute("aria-invalid", "true");
    }
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

let reportView = null;

// Opened by its button and by #report in the address, so that the reload
// after a failed chunk (a deploy removed it) comes back to the report.
// A chunk that fails to load is left to reject: the watchdog sees the
// unhandled rejection and recovers (a reload), which this code could not.
export async function openReport() {
  if (location.hash !== "#report") history.replaceState(history.state, "", "#report");
  reportView ??= import("./report.js").catch((failure) => {
    reportView = null;
    throw failure;
  });
  const { renderReport } = await reportView;
  renderReport(document.getElementById("report-slot"), currentQuote());
}
