"""Tests of bot/keeping/: every kind of record the bot keeps against every way out."""
