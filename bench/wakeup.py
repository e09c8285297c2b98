"""How much this machine charges for waking up: the floor under CPU per token at low N.

    python -m bench.wakeup

Prints the CPU of (1) an idle sleep/wake cycle, (2) parsing one streamed chat chunk with
huggingface_hub when the process is busy, and (3) the same parse right after a 20 ms sleep,
which is what each token costs when a reply's tokens arrive one at a time.
"""

from __future__ import annotations

import time

from huggingface_hub.inference._common import _format_chat_completion_stream_output

CHUNK = (
    'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,'
    '"model":"mistralai/Mistral-7B-Instruct-v0.3","system_fingerprint":"3.0.0-native",'
    '"choices":[{"index":0,"delta":{"role":"assistant","content":" hello"},"logprobs":null,'
    '"finish_reason":null}],"usage":null}'
)
ROUNDS = 200
TOKEN_INTERVAL = 0.02  # 50 tokens/s


def cpu_per_round(work: bool, sleep: bool) -> float:
    started = time.process_time()
    for _ in range(ROUNDS):
        if sleep:
            time.sleep(TOKEN_INTERVAL)
        if work:
            _format_chat_completion_stream_output(CHUNK)
    return (time.process_time() - started) / ROUNDS


def main() -> None:
    for _ in range(ROUNDS):
        _format_chat_completion_stream_output(CHUNK)  # warm up
    idle = cpu_per_round(work=False, sleep=True)
    hot = cpu_per_round(work=True, sleep=False)
    cold = cpu_per_round(work=True, sleep=True)
    print(f"sleep/wake alone:          {idle * 1e6:7.1f} µs CPU")
    print(f"chunk parse, busy process: {hot * 1e6:7.1f} µs CPU")
    print(f"chunk parse after a sleep: {(cold - idle) * 1e6:7.1f} µs CPU")


if __name__ == "__main__":
    main()
