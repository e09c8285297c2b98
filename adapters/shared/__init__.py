"""What every platform shares, done one way: claiming an event and the answer task (platform_jobs), the platforms'
rate limits, the reply records, place settings, /forget-me, what is said about tools, and the sweep when the bot
leaves a server; with rooms for the files people send (files), what becomes knowledge (knowledge_sources), votes
and gaps (feedback), and /usage and /budget (usage_commands). The platforms import this package; it imports no
platform."""
