"""The help desk on Discord: threads marked solved by their askers and helpers, and what becomes of them."""
