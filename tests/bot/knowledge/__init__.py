"""Tests of bot/knowledge/: the knowledge engine, its embeddings and the embedded PostgreSQL server."""
