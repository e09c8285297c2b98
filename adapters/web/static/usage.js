// The sidebar's usage line: what this browser's questions used today and this month (tokens, and US dollars when
// the models have a price) and what is left of each budget that applies. The server sends it with each hello and
// once each answer ends; its text is set as text, the whole /usage report as the line's tooltip.
const $ = (id) => document.getElementById(id);
const ui = { box: $("usage"), line: $("usage-line"), budgets: $("usage-budgets") };

export function showUsage(event) {
  ui.line.textContent = typeof event.text === "string" ? event.text : "";
  ui.box.title = typeof event.detail === "string" ? event.detail : "";
  const budgets = Array.isArray(event.budgets) ? event.budgets : [];
  ui.budgets.replaceChildren(...budgets.map((budget) => {
    const item = document.createElement("li");
    item.textContent = String(budget);
    return item;
  }));
  ui.budgets.hidden = !budgets.length;
  ui.box.hidden = !ui.line.textContent;
}
