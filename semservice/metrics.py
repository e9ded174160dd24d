"""A worker's Prometheus metrics, served as text on /metrics.

readings (messages applied) and alarms as counters, per partition; lag as the messages still
pending in the partition's consumer; pair evaluations; the latency from a snapshot's `ts` (its
node's clock: the publish time of the virtual fleet) to its evaluation, as quantiles of a
sample; the time a partition took from being claimed to being caught up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable

from .partition import Event


class Metrics:
    """What one worker counts."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.readings: dict[int, int] = {}
        self.lag: dict[int, int] = {}
        self.takeover_s: dict[int, float] = {}
        self.alarms = 0
        self.clears = 0
        self.checkpoint_bytes: dict[int, int] = {}
        self.checkpoint_s: dict[int, float] = {}
        self.latencies: deque[float] = deque(maxlen=4096)

    def message(self, partition: int, pending: int, count: int = 1) -> None:
        """`count` messages of `partition` were applied; `pending` more wait."""
        self.readings[partition] = self.readings.get(partition, 0) + count
        self.lag[partition] = pending

    def latency(self, payload: bytes) -> None:
        """Sample the latency of a snapshot evaluated just now."""
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            ts = json.loads(payload).get("ts")
            if isinstance(ts, (int, float)):
                self.latencies.append(time.time() - ts)

    def event(self, event: Event) -> None:
        """A verdict change was published."""
        if event.event == "detected":
            self.alarms += 1
        else:
            self.clears += 1

    def took_over(self, partition: int, seconds: float) -> None:
        """A partition was caught up `seconds` after it was claimed."""
        self.takeover_s[partition] = seconds

    def checkpointed(self, partition: int, size: int, seconds: float) -> None:
        """A checkpoint of `size` bytes took `seconds` to store."""
        self.checkpoint_bytes[partition] = size
        self.checkpoint_s[partition] = seconds

    def forget(self, partition: int) -> None:
        """The partition is no longer held."""
        self.lag.pop(partition, None)

    def quantile(self, q: float) -> float | None:
        """A quantile of the sampled latencies."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def text(self, evaluated: int, refused: int = 0) -> str:
        """The Prometheus exposition."""
        worker = f'worker="{self.worker}"'
        lines = [
            "# TYPE semsvc_readings_total counter",
            *(
                f'semsvc_readings_total{{{worker},partition="{p}"}} {n}'
                for p, n in sorted(self.readings.items())
            ),
            "# TYPE semsvc_lag_messages gauge",
            *(
                f'semsvc_lag_messages{{{worker},partition="{p}"}} {n}'
                for p, n in sorted(self.lag.items())
            ),
            "# TYPE semsvc_takeover_seconds gauge",
            *(
                f'semsvc_takeover_seconds{{{worker},partition="{p}"}} {s:.3f}'
                for p, s in sorted(self.takeover_s.items())
            ),
            "# TYPE semsvc_checkpoint_bytes gauge",
            *(
                f'semsvc_checkpoint_bytes{{{worker},partition="{p}"}} {n}'
                for p, n in sorted(self.checkpoint_bytes.items())
            ),
            "# TYPE semsvc_pairs_evaluated_total counter",
            f"semsvc_pairs_evaluated_total{{{worker}}} {evaluated}",
            "# TYPE semsvc_alarms_total counter",
            f"semsvc_alarms_total{{{worker}}} {self.alarms}",
            "# TYPE semsvc_clears_total counter",
            f"semsvc_clears_total{{{worker}}} {self.clears}",
            "# TYPE semsvc_readings_refused_total counter",
            f"semsvc_readings_refused_total{{{worker}}} {refused}",
            "# TYPE semsvc_reading_latency_seconds summary",
        ]
        for q in (0.5, 0.99):
            if (value := self.quantile(q)) is not None:
                lines.append(
                    f'semsvc_reading_latency_seconds{{{worker},quantile="{q}"}} {value:.6f}'
                )
        return "\n".join(lines) + "\n"

    async def serve(
        self, port: int, evaluated: Callable[[], int], refused: Callable[[], int]
    ) -> asyncio.Server:
        """Serve /metrics on 127.0.0.1:`port`; `evaluated` counts the pair evaluations,
        `refused` the readings of nodes with a key that were not believed."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                await reader.readuntil(b"\r\n\r\n")
                body = self.text(evaluated(), refused()).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                    + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
            writer.close()

        return await asyncio.start_server(handle, "127.0.0.1", port)
