"""The virtual fleet as its own process: python -m benchmarks.ingest.publish PORT PAIRS SECONDS."""

from __future__ import annotations

import asyncio
import sys

from benchmarks.ingest.fleet import announce_all, node_ids, publish


async def main(port: int, pairs: int, seconds: float, prefix: str = "bench") -> None:
    nodes = node_ids(pairs)
    await announce_all("127.0.0.1", port, prefix, nodes)
    sent = await publish("127.0.0.1", port, prefix, nodes, seconds)
    print(f"published {sent} snapshots", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
