"""Tests of bot/state/: history in Redis, locks, coordination, /forget-me, personas and place settings."""
