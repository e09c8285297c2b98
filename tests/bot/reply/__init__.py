"""Tests of bot/reply/: the live renderer and its split."""
