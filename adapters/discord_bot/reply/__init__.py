"""A reply on Discord: channel messages edited in place or a slash command's response, and the buttons under it (a
tool's Run / Cancel, the votes)."""
