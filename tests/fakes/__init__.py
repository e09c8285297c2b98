"""Self-tests of fakes/: the loopback model, Discord and Slack servers behave as the real ones."""
