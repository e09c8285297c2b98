"""Help channels: whether a message nobody addressed to the bot gets an answer there (the decision), and what its words
say before anything is searched (small talk, a question)."""
