"""Evidence retrieval on the device: ``evidence.send`` queues the chunks of the frames asked
for, the publisher sends them at the lowest priority under ``evidence.send_kib_per_s``, and
summaries keep flowing during a transfer. Real parts: the agent from ``build_agent`` (outbox,
publisher, command router, evidence store of real vtest JPEGs), a real Mosquitto broker."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from edgewatch.agent.app import build_agent
from edgewatch.agent.commands import CommandRouter
from edgewatch.agent.evidence.transfer import EvidenceSender, format_ranges, parse_ranges
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.collector.command_exchange import send_command
from edgewatch.config.agent import AgentConfig
from edgewatch.config.collector import CollectorMqttConfig
from edgewatch.contracts import codec
from edgewatch.contracts.evidence import EvidenceChunk
from support.broker import MosquittoBroker
from support.evidence_fleet import device_config, stock_store
from support.waiting import wait_until


class Recorder:
    """Every message on the device's evidence and summary topics, with its arrival time."""

    def __init__(self, broker: MosquittoBroker, device: str) -> None:
        self.got: list[tuple[float, str, bytes]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"rec-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
        self.client.on_message = self._message
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe([(f"edgewatch/v1/f1/{device}/evidence", 1),
                               (f"edgewatch/v1/f1/{device}/summary", 1)])
        self.client.loop_start()
        assert self.ready.wait(5)

    def _message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self.lock:
            self.got.append((time.time(), msg.topic.rsplit("/", 1)[-1], bytes(msg.payload)))

    def of(self, leaf: str) -> list[tuple[float, bytes]]:
        with self.lock:
            return [(t, p) for t, lf, p in self.got if lf == leaf]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_chunk_ranges() -> None:
    assert parse_ranges("0-2,5,7-7", 10) == [0, 1, 2, 5, 7]
    assert parse_ranges("3-100", 5) == [3, 4]
    assert format_ranges([5, 0, 1, 2, 7]) == "0-2,5,7"


def test_send_queues_only_the_chunks_asked_for(tmp_path: Path, vtest: Path) -> None:
    ids = stock_store(tmp_path / "ev", vtest, 3, alert_id="a-9")
    sender = EvidenceSender(tmp_path / "ev", "cam", chunk_bytes=16384, bytes_per_s=1e9)
    router = CommandRouter()
    sender.register(router)
    listed = router("evidence.list", json.dumps({"alert": "a-9"}).encode())
    assert listed.ok and [f.id for f in listed.frames or []] == ids
    jpg = listed.frames[0].files[0]  # type: ignore[index]
    assert jpg.name == f"{ids[0]}.jpg" and jpg.chunks == -(-jpg.bytes // 16384) > 2
    assert router("evidence.list", json.dumps({"alert": "other"}).encode()).frames == []
    sent = router("evidence.send", json.dumps(
        {"id": "c-1", "files": [f"{ids[0]}.jpg:1-2", f"{ids[1]}.json"]}).encode())
    assert sent.ok and sent.chunks == 3, sent
    chunks: list[EvidenceChunk] = []
    while sender.pending:  # the byte bucket may ask for a microsecond between chunks
        chunk = sender.next()
        if chunk is not None:
            chunks.append(chunk)
    assert sender.next() is None
    got = [(c.file, c.index) for c in chunks]
    assert got == [(f"{ids[0]}.jpg", 1), (f"{ids[0]}.jpg", 2), (f"{ids[1]}.json", 0)]
    first = chunks[0]
    assert first.sha256 == jpg.sha256 and first.size == jpg.bytes
    for encoding in ("msgpack", "json"):  # a chunk survives either encoding
        back = codec.decode("evidence", codec.encode(first, encoding))
        assert isinstance(back, EvidenceChunk) and back.data == first.data
    refused = router("evidence.send", json.dumps({"files": [f"{ids[0]}.jpg:x"]}).encode())
    assert not refused.ok and "bad chunk range" in (refused.error or "")


@pytest.mark.slow
def test_chunks_stay_under_the_rate_and_summaries_are_not_delayed(
        tmp_path: Path, broker: MosquittoBroker, ssd_config: AgentConfig,
        ssd_reference: ReferenceProfile, vtest: Path) -> None:
    rate_kib = 192.0
    cfg = device_config(ssd_config, tmp_path / "dev", broker, "cam-t", chunk_kib=16,
                        send_kib_per_s=rate_kib)
    stock_store(Path(cfg.evidence.path), vtest, 8)
    agent = build_agent(cfg, ssd_reference, publish=True, live=False)
    delivery = agent.outputs.delivery
    assert delivery is not None and delivery.publisher is not None
    recorder = Recorder(broker, "cam-t")
    agent.start()
    try:
        assert delivery.publisher.connected.wait(10)
        ops = CollectorMqttConfig(host=broker.host, port=broker.port, client_id="ops")
        result = send_command(ops, "f1", "cam-t", "evidence.send", {"alert": "a-1"})
        assert result.ok and result.chunks, result
        total = result.chunks
        put_at: dict[int, float] = {}
        stop = threading.Event()

        def summaries() -> None:  # a window closes every 0.5 s during the transfer
            n = 0
            while not stop.wait(0.5):
                n += 1
                put_at[n] = time.time()
                delivery.outbox.put("summary", {"schema": "edgewatch.summary/2", "n": n})
                delivery.publisher.wake()  # type: ignore[union-attr]

        feeder = threading.Thread(target=summaries)
        feeder.start()
        wait_until(lambda: len(recorder.of("evidence")) >= total, 60, "every chunk")
        stop.set()
        feeder.join()
        wait_until(lambda: len(recorder.of("summary")) >= len(put_at), 10, "the summaries")
    finally:
        agent.close()
        recorder.close()
    chunks = recorder.of("evidence")
    sizes = [len(codec.decode("evidence", p).data) for _, p in chunks]  # type: ignore[union-attr]
    span = chunks[-1][0] - chunks[0][0]
    rate = (sum(sizes) - sizes[0]) / span / 1024  # the first chunk is the bucket's burst
    latencies = []
    for t, payload in recorder.of("summary"):
        n = codec.decode_as(dict[str, Any], payload)["n"]
        latencies.append(t - put_at[n])
    print(f"\nevidence transfer: {len(chunks)} chunks, {sum(sizes) / 1024:.0f} KiB in "
          f"{span:.2f} s = {rate:.1f} KiB/s (limit {rate_kib:.0f}); {len(latencies)} "
          f"summaries during it, delay max {max(latencies) * 1000:.0f} ms, mean "
          f"{sum(latencies) / len(latencies) * 1000:.0f} ms")
    assert rate <= rate_kib * 1.05
    assert rate >= rate_kib * 0.5  # and it does send
    assert len(latencies) >= 4
    assert max(latencies) < 0.5  # one window is 10 s; no summary waits behind the transfer
