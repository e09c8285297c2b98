"""Files people send: attachments (text, documents, images) made part of a question, documents' text and images decoded
in isolated worker processes (the fork servers' modules too), never in the bot's."""
