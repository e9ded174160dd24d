"""Shared protocol v1 test vectors: each JSON file is one topic + payload and its outcome."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VECTOR_DIR = Path(__file__).parent


@dataclass(frozen=True)
class Vector:
    """One vector: a message and either its expected decode or its expected rejection."""

    name: str
    prefix: str
    topic: str
    payload: bytes
    retained: bool
    expect: dict[str, Any] | None
    reject: str | None


def load_vectors() -> list[Vector]:
    """Load every vector, in file order."""
    vectors = []
    for path in sorted(VECTOR_DIR.glob("*.json")):
        raw = json.loads(path.read_text())
        if raw.get("payload_hex") is not None:
            payload = bytes.fromhex(raw["payload_hex"])
        else:
            payload = raw["payload"].encode()
        vectors.append(
            Vector(
                name=path.stem,
                prefix=raw["prefix"],
                topic=raw["topic"],
                payload=payload,
                retained=raw.get("retained", False),
                expect=raw.get("expect"),
                reject=raw.get("reject"),
            )
        )
    return vectors
