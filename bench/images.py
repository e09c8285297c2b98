"""Benchmark: what an image attached to a question costs: the bot's added time before the model
is asked, and the Redis memory a conversation's images take; and what an image bomb costs the
bot's memory.

    python -m bench.images [--n 10] [--side 4032] [--bombs 3]

The real bot process (`python -m bot discord`) against the loopback fake Discord and model
server, with a model that sees images. Each round mentions the bot once with a photo (a JPEG of
`--side` × 3/4 pixels, as phones take them, downloaded from the fake's CDN, checked, scaled down
to 1,568 px and sent as a data URL) and once without; "before the model is asked" is the mention
sent → the model server receiving the request.

Then `--bombs` mentions at once, each with four 7,000 × 7,000 PNGs of one colour (about 150 KB
each, 147 MB each decoded): the bot process's resident memory before, at its peak (VmHWM) and 5 s
after the answers, and the peak of the processes that decoded them.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import time

import redis.asyncio as aioredis
from PIL import Image, ImageFilter

from bot.state.redis_client import hash_tag
from fakes.documents import flat_png
from fakes.harness.discord_world import DiscordWorld
from fakes.harness.process_resources import children, memory
from fakes.harness.processes import REDIS_URL
from fakes.model_server import Script

VISION_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"


def photo(width: int, height: int, seed: int) -> bytes:
    """A photo-like JPEG: smooth colour fields with grain, so it compresses as camera output does."""
    rng = random.Random(seed)
    small = Image.frombytes("RGB", (32, 24), rng.randbytes(32 * 24 * 3)).resize((width, height), Image.BICUBIC)
    grain = Image.frombytes("L", (width, height), rng.randbytes(width * height)).filter(ImageFilter.GaussianBlur(1))
    image = Image.blend(small, Image.merge("RGB", (grain, grain, grain)), 0.15)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


async def run(rounds: int, side: int, bombs: int) -> None:
    async with DiscordWorld.open() as world:
        channel = world.add_channel("general")
        alice = world.add_user("alice")
        world.default_script = Script(text="A photo.", rate=200)
        await world.start_bot(MODEL_ID=VISION_MODEL, VISION_MODELS=VISION_MODEL)
        redis = aioredis.from_url(REDIS_URL)
        with_image: list[float] = []
        without: list[float] = []
        image_bytes: list[int] = []
        upload = 0
        try:
            for number in range(rounds):
                data = photo(side, side * 3 // 4, number)
                upload = len(data)
                for marker, files in ((f"img{number}", [("photo.jpg", "image/jpeg", data)]), (f"txt{number}", [])):
                    sent = time.time()
                    message = await world.fake.send_user_message(
                        channel["id"], alice, f"{marker} What is in this picture?", mentions_bot=True, files=files
                    )
                    [request] = await world.wait_model_request(marker, timeout=30)
                    (with_image if files else without).append(request.received_at - sent)
                    thread = await world.wait_thread(message)
                    await world.wait_bot_text(thread["id"], lambda text: text.startswith("A photo."))
                    if files:
                        conversation = hash_tag(f"discord:conv:{message['id']}")
                        key = f"{world.key_prefix}chat:{conversation}:images"
                        image_bytes.append(int(await redis.memory_usage(key) or 0))
            if bombs:
                await bomb_round(world, channel, bombs)
        finally:
            await redis.aclose()
            await world.stop_bot(check=True)
    report(rounds, side, upload, with_image, without, image_bytes)


async def bomb_round(world: DiscordWorld, channel: dict[str, object], mentions: int) -> None:
    """`mentions` people at once, four image bombs each; the bot's memory around it."""
    assert world.bot is not None
    pid, bomb = world.bot.pid, flat_png(7000)
    files = [(f"b{n}.png", "image/png", bomb) for n in range(4)]
    people = [world.add_user(f"bomber{number}") for number in range(mentions)]
    world.answer("bomb", Script(text="Blue squares.", rate=200))
    before = memory(pid)["VmRSS"]
    sent = time.time()
    posted = await asyncio.gather(
        *(world.mention(channel, person, "bomb: what is in these?", files=files) for person in people)
    )
    for message in posted:
        thread = await world.wait_thread(message, timeout=120)
        await world.wait_bot_text(thread["id"], lambda text: text.startswith("Blue squares."), timeout=240)
    answered = time.time() - sent
    peak = memory(pid)["VmHWM"]
    workers = {worker for helper in children(pid) for worker in children(helper)}  # under the fork server
    worker_peak = max((memory(worker)["VmHWM"] for worker in workers), default=0)
    await asyncio.sleep(5)
    after = memory(pid)["VmRSS"]
    print(
        f"{mentions} mentions at once, four {len(bomb) // 1000} KB PNGs of 7,000 × 7,000 each: "
        f"answered in {answered:.1f} s"
    )
    print("| the bot's RSS before | peak | 5 s after the answers | a worker's peak |")
    print("|---|---|---|---|")
    print(
        f"| {mb(before)} | {mb(peak)} (+{mb(peak - before)}) | {mb(after)} (+{mb(after - before)}) "
        f"| {mb(worker_peak)} |"
    )


def mb(size: int) -> str:
    return f"{size / 1024 / 1024:.0f} MB"


def report(
    rounds: int, side: int, upload: int, with_image: list[float], without: list[float], image_bytes: list[int]
) -> None:
    def ms(values: list[float], q: float) -> str:
        ordered = sorted(values)
        return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.0f} ms"

    added = statistics.median(with_image) - statistics.median(without)
    print(f"{rounds} questions with a {side}×{side * 3 // 4} JPEG of {upload / 1e6:.1f} MB, {rounds} without")
    print("| question | mention → model asked, p50 | p90 |")
    print("|---|---|---|")
    print(f"| with the photo | {ms(with_image, 0.5)} | {ms(with_image, 0.9)} |")
    print(f"| without | {ms(without, 0.5)} | {ms(without, 0.9)} |")
    print(f"added by the image (p50): {added * 1000:.0f} ms")
    print(f"Redis memory of a conversation's one image: {statistics.median(image_bytes) / 1000:.0f} KB (median)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10, help="questions with an image (and as many without)")
    parser.add_argument("--side", type=int, default=4032, help="the photo's long side in pixels")
    parser.add_argument("--bombs", type=int, default=3, help="mentions at once with four image bombs each (0: none)")
    options = parser.parse_args()
    asyncio.run(run(options.n, options.side, options.bombs))


if __name__ == "__main__":
    main()
