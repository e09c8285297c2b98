"""Tests of bot/respond/: whether a message nobody addressed to the bot gets an answer."""
