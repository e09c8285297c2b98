"""Tests of bot/usage/: what every model call counts, and the usage ledger and its budgets."""
