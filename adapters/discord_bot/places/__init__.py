"""Places on Discord: which channel and server a message belongs to (where its settings apply), who may change a
place's settings, /persona and its form, and /model, /tools and /respond for a place."""
