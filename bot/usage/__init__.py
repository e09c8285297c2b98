"""Usage: each turn's tokens and cost counted per person, server or workspace, model and day, in Redis; the budgets
that apply held before the model is called and settled after; and the totals `/usage` reads."""
