"""The core: one turn from history to prompt to model to live reply to history, for any platform, with no platform
SDK. core.py runs a turn's steps (turn/), app.py builds the process's services; the rooms: turn/ (a turn's steps),
model/ (the backends, which model answers, the stream), reply/ (the live reply on any surface), state/ (what the
processes share in Redis: conversations, locks, claims, place settings, /forget-me), respond/ (help channels'
decision), knowledge/ (what a community shared, searched and cited), tools/ (MCP tools and a person's consent),
usage/ (tokens, costs and budgets), keeping/ (every kind of record kept and how it goes). Beside them: errors,
loop (running work on the event loop), metrics, and __main__ (`python -m bot`)."""
