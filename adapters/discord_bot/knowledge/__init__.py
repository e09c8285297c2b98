"""Knowledge on Discord: a server's knowledge and which channels are it, what an admin adds (a file, a message), the
channels kept current from Discord's events, their history read when opted in, /knowledge and its listing."""
