"""`python -m bot [console|discord|slack|web] [adapter flags]`: starts the adapters (adapters.launch)."""

import os
import sys

# huggingface_hub reads this when imported. Its telemetry would fetch a registry from the Hub
# with a blocking request during the first reply: every reply freezes for up to 3 s where the
# Hub can't be reached. Operators may still set it to 0.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from adapters.launch import main

sys.exit(main(sys.argv[1:]))
