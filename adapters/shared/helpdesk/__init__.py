"""A help channel's people: who its helpers are, and threads handed to them (after a 👎, on "Still need help?", or for
a question the knowledge covers only weakly), with the bot staying out of a thread once it is theirs."""
