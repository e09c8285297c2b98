"""Tests of config/: settings, the model catalog and usage budgets from the environment."""
