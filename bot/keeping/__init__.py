"""What the bot keeps, in one list (bot.keeping.kinds): every kind of record, whose it is, and how each way out
(the bot leaving a server or workspace, /forget-me, /reset, the time to live) removes it."""
