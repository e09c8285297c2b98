"""What the platforms share for deleting what the bot keeps (bot.keeping lists it): the sweep of a server's keys when
the bot leaves it, the index of messages added to knowledge, and the votes' Lua scripts."""
