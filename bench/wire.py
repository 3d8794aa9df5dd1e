"""Bytes on the wire per window summary, and the time to encode and decode one.

    python bench/wire.py [--assets DIR] [--window 60] [--repeats 1000]

Builds the reference from the first 400 frames of vtest.avi, then replays the whole clip
with the default configuration and ``--window``-second windows, as ``edgewatch replay
--publish`` does: each window goes through the outbox (which fills in device, boot_id, seq
and the loss report), and each queued row is encoded as the publisher would publish it.
For every summary the table gives the bytes of the default encoding (MessagePack+zlib,
schema 2), of JSON (schema 2) and of the schema-1 JSON devices published before, then the
median time of ``--repeats`` encodings (contracts.codec.encode of the schema-2 message) and
decodings (contracts.codec.decode, as the collector decodes it, bounds checked), in
microseconds. Exits 1 if a summary takes more than 2,048 bytes in the default encoding.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import msgspec

from edgewatch.agent.app import Agent
from edgewatch.agent.delivery.assembly import Delivery
from edgewatch.agent.delivery.sinks import ListSink, Tee
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.profiling import build_reference
from edgewatch.agent.source import open_source
from edgewatch.config.agent import AgentConfig, parse_config
from edgewatch.contracts import MSGPACK, Summary, codec

LIMIT = 2048
"""Largest default-encoding summary accepted (bytes)."""
START = 1767225600.0  # 2026-01-01T00:00:00Z, the replay's first frame


def assets_dir(arg: str | None) -> Path:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
    return Path(arg or os.environ.get("EDGEWATCH_ASSETS") or default)


def make_config(assets: Path, window_s: float, outbox: Path) -> AgentConfig:
    """The default configuration, with the model, the window and a scratch outbox."""
    return parse_config({
        "model": {"path": str(assets / "models/ssdlite_mobilenet_v2_coco.onnx"),
                  "labels": str(assets / "models/coco_labels.txt")},
        "window": {"seconds": window_s},
        "outbox": {"path": str(outbox)},
        "alerts": {"state_path": ":memory:"},
        "device": {"id": "cam-1"},
    })


def replay(cfg: AgentConfig, video: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(schema-2 rows as queued, schema-1 replay lines with the same transport fields)."""
    engine = InferenceEngine(cfg.model)
    reference = build_reference(cfg, engine, open_source(str(video), first=0, last=399),
                                show_progress=False)
    delivery = Delivery(cfg, reference, device="cam-1", model_name=engine.model_name,
                        model_sha256=engine.model_sha256, config_path=None, publish=False)
    windows = ListSink()
    agent = Agent(cfg, engine, reference, Tee(delivery.sink, windows), live=False,
                  lossless=True)
    agent.run(open_source(str(video), start_time=START))
    rows = [r.payload for r in delivery.outbox.pending(10_000) if r.kind == "summary"]
    delivery.close()
    old = [{**w.to_dict(), **{k: row[k] for k in ("device", "boot_id", "seq", "loss")
                              if k in row}}
           for w, row in zip(windows.summaries, rows)]
    return rows, old


def median_us(fn: Any, repeats: int) -> float:
    return statistics.median(timeit.repeat(fn, number=1, repeat=repeats)) * 1e6


def measure(row: dict[str, Any], old: dict[str, Any], repeats: int) -> dict[str, Any]:
    message = msgspec.convert(row, Summary)
    packed = codec.encode(row)  # what the publisher sends: the row's JSON body, encoded
    assert codec.decode("summary", packed, MSGPACK) == message
    return {
        "start": message.window.start, "frames": message.frames.seen,
        "msgpack": len(packed), "json2": len(codec.encode(row, "json")),
        "json1": len(json.dumps(old, separators=(",", ":"), allow_nan=False).encode()),
        "encode_us": median_us(lambda: codec.encode(message), repeats),
        "decode_us": median_us(lambda: codec.decode("summary", packed, MSGPACK), repeats),
    }


def table(results: list[dict[str, Any]]) -> str:
    header = (f"{'window (UTC)':19}  {'frames':>6}  {'msgpack+zlib B':>14}  {'JSON/2 B':>8}  "
              f"{'JSON/1 B':>8}  {'vs JSON/1':>9}  {'encode us':>9}  {'decode us':>9}")
    lines = [header, "-" * len(header)]
    for r in results:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["start"]))
        lines.append(f"{stamp:19}  {r['frames']:6d}  {r['msgpack']:14d}  {r['json2']:8d}  "
                     f"{r['json1']:8d}  {r['json1'] / r['msgpack']:8.1f}x  "
                     f"{r['encode_us']:9.1f}  {r['decode_us']:9.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--assets", help="assets directory (default: $EDGEWATCH_ASSETS)")
    p.add_argument("--window", type=float, default=60.0, help="window length in seconds")
    p.add_argument("--repeats", type=int, default=1000, help="timings per summary")
    args = p.parse_args(argv)
    assets = assets_dir(args.assets)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_config(assets, args.window, Path(tmp) / "outbox.db")
        rows, old = replay(cfg, assets / "video/vtest.avi")
    results = [measure(row, line, args.repeats) for row, line in zip(rows, old)]
    print(f"settings: edgewatch defaults, window.seconds={args.window:g}; reference: vtest.avi "
          f"frames 0-399; replay: all of vtest.avi; medians of {args.repeats} runs")
    print(table(results))
    largest = max(r["msgpack"] for r in results)
    print(f"largest summary in the default encoding: {largest} bytes (limit {LIMIT})")
    if largest > LIMIT:
        print(f"wire.py: a summary takes {largest} bytes, more than {LIMIT}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
