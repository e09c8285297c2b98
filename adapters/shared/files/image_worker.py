"""What the image workers' fork server imports before any worker starts (adapters.shared.files.isolation):
Pillow, set to keep a few freed memory blocks for the next image, and adapters.shared.files.images."""

import os

# Pillow reads this when it is imported. Without a cache of freed 16 MB blocks, every photo a worker
# decodes maps its memory afresh: 40 ms of page faults on a 12-megapixel photo, a third of its time.
os.environ.setdefault("PILLOW_BLOCKS_MAX", "4")

import adapters.shared.files.images  # noqa: F401  (after the setting above)
