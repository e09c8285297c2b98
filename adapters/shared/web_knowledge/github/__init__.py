"""A GitHub repository as knowledge: its documentation, issues and discussions, read incrementally."""
