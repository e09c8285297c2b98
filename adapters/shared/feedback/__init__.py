"""Votes on the bot's answers and its knowledge gaps: kept in Redis (with their Lua scripts), what a voter is told, and
what `/knowledge gaps` shows an admin."""
