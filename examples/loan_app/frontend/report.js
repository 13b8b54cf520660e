// The repayment report: loaded by import() only when it is opened.  After a
// deploy an open page may still ask for this file by its old name.
import { formatMoney } from "./loan.js";

const EDITION = "2026.1";

export function renderReport(slot, quote) {
  slot.innerHTML = `
    <article id="report" class="report" aria-labelledby="report-title" tabindex="-1">
      <h2 id="report-title">Repayment report</h2>
      <div id="report-body"><p>Working out your schedule…</p></div>
      <p class="edition">Report format ${EDITION}</p>
    </article>`;
  const article = slot.querySelector("#report");
  article.focus();
  const body = slot.querySelector("#report-body");
  quote.then(
    (q) => body.replaceChildren(summary(q), schedule(q)),
    (failure) => {
      const p = document.createElement("p");
      p.className = "error";
      p.setAttribute("role", "alert");
      p.textContent = `No report without a quote: ${failure.message}`;
      body.replaceChildren(p);
    }
  );
}

function summary(q) {
  const list = document.createElement("dl");
  for (const [term, value] of [
    ["Amount", formatMoney(q.amount)],
    ["Term", `${q.term} months`],
    ["Rate", `${q.annual_rate}% a year`],
    ["Monthly payment", formatMoney(q.monthly_payment)],
    ["Total interest", formatMoney(q.total_interest)],
  ]) {
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = term;
    dd.textContent = value;
    list.append(dt, dd);
  }
  return list;
}

// One row per year: what the payments of that year repay, what they cost,
// what is left.  (The backend's figures are the binding ones; this is a guide.)
function schedule(q) {
  const table = document.createElement("table");
  table.innerHTML = `<caption>Year by year</caption>
    <thead><tr><th scope="col">Year</th><th scope="col">Principal</th>
    <th scope="col">Interest</th><th scope="col">Left to repay</th></tr></thead>`;
  const rows = document.createElement("tbody");
  const rate = Number(q.annual_rate) / 1200;
  const payment = Number(q.monthly_payment);
  let balance = Number(q.amount);
  for (let year = 1; year <= q.term / 12; year++) {
    let principal = 0;
    let interest = 0;
    for (let month = 0; month < 12; month++) {
      const due = balance * rate;
      const repaid = Math.min(payment - due, balance);
      interest += due;
      principal += repaid;
      balance -= repaid;
    }
    const row = rows.insertRow();
    for (const cell of [String(year), principal, interest, Math.max(balance, 0)]) {
      row.insertCell().textContent = typeof cell === "string" ? cell : formatMoney(cell.toFixed(2));
    }
  }
  table.append(rows);
  return table;
}
