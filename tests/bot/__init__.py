"""Tests of bot/, the core: a turn from history to prompt to model to live reply, for any platform."""
