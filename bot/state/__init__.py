"""What the bot's processes share in Redis besides knowledge and usage: the clients, conversations and their locks,
claims, aliases and quotas, the index of conversations, each place's settings (personas), and /forget-me."""
