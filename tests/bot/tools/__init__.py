"""Tests of bot/tools/: MCP servers, the toolbox, turns with tools and their settings."""
