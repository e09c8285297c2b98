"""One turn, step by step: whether it is taken (admission), its prompt (preparation, its knowledge search, the history
that fits), its answer (the model's stream or the tool loop) and what is stored of it (remembering). bot.core runs the
steps in order."""
