import { formatMoney } from "./money.js";

export function renderForm(root, onSubmit) {
  const main = document.createElement("main");
  main.innerHTML = `
    <h1>Apply for a loan</h1>
    <form>
      <label for="amount">Amount</label>
      <input id="amount" name="amount" type="number" min="1000" step="500" value="25000">
      <label for="years">Term</label>
      <select id="years" name="years">
        <option value="3">3 years</option>
        <option value="5" selected>5 years</option>
        <option value="10">10 years</option>
      </select>
      <p class="hint"></p>
      <button type="submit">See my repayment plan</button>
    </form>`;
  const form = main.querySelector("form");
  const hint = main.querySelector(".hint");
  const update = () => {
    const amount = Number(form.amount.value);
    hint.textContent = `You are asking for ${formatMoney(amount)}.`;
  };
  form.addEventListener("input", update);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onSubmit({ amount: Number(form.amount.value), years: Number(form.years.value) });
  });
  update();
  root.append(main);
}
