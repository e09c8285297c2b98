"""`/usage` and `/budget`, the same on every platform: what a person or a server spent and what is left, and the
budgets an admin sets for a channel or server."""
