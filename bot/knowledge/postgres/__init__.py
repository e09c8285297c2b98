"""The knowledge engine on PostgreSQL with pgvector: the engine (engine.py), its schema and statements (sql.py), the
search's one statement and what it is asked with (search.py), how passages are stored (storing.py), the language each
text is stemmed in (languages.py), what an older database is given at start (upgrades.py), and the re-embed after
the embedding model changed (transition.py)."""

from bot.knowledge.postgres.engine import KnowledgeEngineError, PostgresEngine

__all__ = ["KnowledgeEngineError", "PostgresEngine"]
