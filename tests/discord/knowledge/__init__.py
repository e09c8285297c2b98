"""Tests of Discord's knowledge: channels made knowledge, added messages, who reads what, through the real bot."""
