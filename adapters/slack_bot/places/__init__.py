"""Places on Slack: which channel and workspace a message belongs to (where its settings apply), and /persona."""
