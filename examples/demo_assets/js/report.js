import { monthlyPayment } from "./money.js";

export function renderReport(main, { amount, years }, formatMoney) {
  const monthly = monthlyPayment(amount, years);
  const rows = [];
  let balance = amount;
  for (let year = 1; year <= years; year += 1) {
    for (let month = 0; month < 12; month += 1) {
      const interest = (balance * 0.069) / 12;
      balance -= monthly - interest;
    }
    rows.push(`<tr><td>${year}</td><td>${formatMoney(Math.max(balance, 0))}</td></tr>`);
  }
  const section = document.createElement("section");
  section.className = "report";
  section.innerHTML = `
    <h2>Your repayment plan</h2>
    <p>${formatMoney(monthly)} a month for ${years} years.</p>
    <table><thead><tr><th>Year</th><th>Balance</th></tr></thead>
    <tbody>${rows.join("")}</tbody></table>`;
  main.append(section);
}
