"""Knowledge: what a community wrote and shared (channel messages, documents, `KNOWLEDGE_DIR`), searched before a
question reaches the model, and cited under the answer. The engine is behind one small interface
(bot.knowledge.passages.KnowledgeEngine; PostgreSQL with pgvector in bot.knowledge.postgres, embedded by default by
bot.knowledge.embedded); the embedder (bot.knowledge.embeddings) turns text into vectors; bot.knowledge.service joins
them."""
