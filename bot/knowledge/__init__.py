"""Knowledge: what a community wrote and shared (channel messages, documents, `KNOWLEDGE_DIR`), searched before a
question reaches the model, and cited under the answer. The engine (bot.knowledge.engine) is behind one small
interface; the embedder (bot.knowledge.embeddings) turns text into vectors; bot.knowledge.service joins them."""
