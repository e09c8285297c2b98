"""Tests of bot/turn/: a turn's steps, the prompt that fits, what a failed or stopped answer leaves."""
