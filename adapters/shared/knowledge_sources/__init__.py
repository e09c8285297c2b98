"""What becomes knowledge, the same on every platform: which channels are knowledge and where reading their history
stands, messages added one by one, files cut into passages, KNOWLEDGE_DIR, and the live edits a history's reading must
not undo."""
