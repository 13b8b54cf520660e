const formatter = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });

export const formatMoney = (value) => formatter.format(value);

export function monthlyPayment(amount, years, yearlyRate = 0.069) {
  const rate = yearlyRate / 12;
  const months = years * 12;
  return (amount * rate) / (1 - (1 + rate) ** -months);
}
