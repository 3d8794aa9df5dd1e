"""Fleet scale, simulated: many devices through one broker into collector instances that
share the load (MQTT 5 shared subscription) and one PostgreSQL database.

    python bench/fleet_scale.py [--devices 10000] [--minutes 3] [--compress 6]
                                [--instances 2] [--repeats 3] [--burst 1]
                                [--storage-devices 10] [--storage-days 2]
                                [--pg postgresql://postgres@127.0.0.1:5432/test]

Each simulated device sends one summary per simulated minute (a 60-s window), spread evenly
over the minute; a simulated minute lasts ``--compress`` seconds of wall time. Devices are
MQTT identities, not sockets: ``--publishers`` connections each publish on behalf of
``devices / publishers`` device ids (10,000 sockets would measure the machine's descriptor
limit, not the collector). The payloads are realistic and compact: the summary of
tests/data/summary-example.json in the contracts' default encoding (MessagePack + zlib),
each with its own device, seq and window, encoded once before the runs.

Each repeat, on one private Mosquitto:

1. baseline: ``--instances`` raw QoS 1 subscribers in a shared group (processes that only
   read each payload's window end) receive the same paced fleet: raw delivery rate and lag;
2. collectors: ``--instances`` collector processes (the real CollectorService, as
   ``edgewatch collector`` runs it) in one shared group, on a fresh PostgreSQL database
   (created, then dropped): the paced fleet, then ``--burst`` simulated minutes published
   as fast as the publishers can (catch-up capacity), against the raw subscribers' burst.

Then, once: ``--storage-devices`` devices x ``--storage-days`` days of windows stored through
the store's own ingest and rolled up hourly, then daily, as retention does, to size each
kind of row; from those, the rows and bytes per device under the default ``[retention]``.

Lag is end to end: from the moment the device's summary was due (the window end, which is
its publish time) to the commit of the transaction that stored it, as the collector
process sees its store call return (the raw baseline: to its arrival at the subscriber).
The stored rate is read from the store (rows counted every 0.5 s). Collector CPU is read
from /proc/<pid>/stat of the collector processes (user + system) over the paced run.
Storage: PostgreSQL's size of every table with its indexes and TOAST, per summary row,
times 1,440 summaries per device per day (before retention rolls them up). A collector
that keeps up shows a sustained rate equal to the offered one and a lag that does not grow;
one that does not shows a lower rate, and lags that measure its growing backlog.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from edgewatch.contracts import codec  # noqa: E402
from edgewatch.contracts.summary import Summary, Window  # noqa: E402

EXAMPLE = json.loads((REPO / "tests" / "data" / "summary-example.json").read_text())
ROOT = "edgewatch/v1"
FLEET = "sim"
BASE = 1_767_225_600.0
"""Simulated time of the first window's start (2026-01-01)."""
SUMMARIES_PER_DAY = 1440


# ----------------------------------------------------------------------------- payloads


def device_id(d: int) -> str:
    return f"sim-{d:05d}"


def due(d: int, devices: int, minute: int) -> float:
    """Simulated time at which device ``d`` publishes its summary of ``minute``: the end of
    its window, devices spread evenly over the minute."""
    return BASE + 60.0 * (minute + 1) + 60.0 * d / devices


def encode_fleet(devices: int, minutes: int) -> list[list[tuple[str, bytes]]]:
    """Per simulated minute, (topic, payload) of every device, in due order."""
    template = codec.decode("summary", json.dumps(EXAMPLE).encode())
    assert isinstance(template, Summary)
    out = []
    for m in range(minutes):
        row = []
        for d in range(devices):
            end = due(d, devices, m)
            msg = msgspec.structs.replace(template, device=device_id(d), boot_id="boot-1",
                                          seq=m, window=Window(start=end - 60.0, end=end))
            row.append((f"{ROOT}/{FLEET}/{device_id(d)}/summary", codec.encode(msg)))
        out.append(row)
    return out


def window_end(raw: bytes) -> float:
    """The window end of an encoded summary, read as cheaply as possible."""
    body = zlib.decompressobj(zdict=codec.WIRE_WORDS).decompress(raw)
    return float(msgspec.msgpack.decode(body, type=_End).window.end)


class _Span(msgspec.Struct):
    end: float


class _End(msgspec.Struct):
    window: _Span


# ----------------------------------------------------------------------------- publishing


class Publishers:
    """``n`` MQTT connections; connection ``i`` publishes for devices ``d % n == i``."""

    def __init__(self, port: int, n: int) -> None:
        self.props = Properties(PacketTypes.PUBLISH)
        self.props.ContentType = codec.MSGPACK
        self.clients = []
        for i in range(n):
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fleet-pub-{i}",
                            protocol=mqtt.MQTTv5)
            c.max_inflight_messages_set(1000)
            c.max_queued_messages_set(0)
            c.connect("127.0.0.1", port)
            c.loop_start()
            self.clients.append(c)
        self.late: list[float] = []
        """How late each publish was against its due time (wall seconds)."""

    def paced(self, minutes: Sequence[list[tuple[str, bytes]]], first: int, t0: float,
              compress: float) -> None:
        """Publish each message at its due time: simulated second s of the run at wall time
        ``t0 + (s - start of minute first) * compress / 60``."""
        n, devices = len(self.clients), len(minutes[0])
        scale, origin = compress / 60.0, BASE + 60.0 * first

        def run(i: int) -> list[float]:
            late, infos = [], []
            for m, row in enumerate(minutes):
                for d in range(i, devices, n):
                    at = t0 + (due(d, devices, first + m) - 60.0 - origin) * scale
                    wait = at - time.time()
                    if wait > 0.002:
                        time.sleep(wait)
                    late.append(max(time.time() - at, 0.0))
                    infos.append(self.clients[i].publish(*row[d], qos=1,
                                                         properties=self.props))
            for info in infos:
                info.wait_for_publish(300)
            return late

        self._threads(run)

    def burst(self, minutes: Sequence[list[tuple[str, bytes]]]) -> None:
        """Publish as fast as the connections take them."""
        n = len(self.clients)

        def run(i: int) -> list[float]:
            infos = [self.clients[i].publish(*row[d], qos=1, properties=self.props)
                     for row in minutes for d in range(i, len(row), n)]
            for info in infos:
                info.wait_for_publish(300)
            return []

        self._threads(run)

    def _threads(self, run: Any) -> None:
        results: list[list[float]] = [[] for _ in self.clients]

        def target(i: int) -> None:
            results[i] = run(i)

        threads = [threading.Thread(target=target, args=(i,)) for i in range(len(self.clients))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r in results:
            self.late.extend(r)

    def close(self) -> None:
        for c in self.clients:
            c.disconnect()
            c.loop_stop()


# ----------------------------------------------------------------------------- child processes


def serve_collector(config: str, record: str) -> int:
    """Child: the collector service of ``config``; on SIGTERM, writes (window end, commit
    time) of every summary it stored to ``record``."""
    from edgewatch.collector.service import CollectorService
    from edgewatch.config.collector import load_collector_config

    service = CollectorService(load_collector_config(config))
    samples: list[tuple[float, float]] = []
    store = service.ingestor.store  # what the ingest writes through (in its own process)
    ingest_many = store.ingest_many

    def timed(items: Sequence[Any], quarantine: Sequence[Any] = ()) -> list[bool]:
        fresh = ingest_many(items, quarantine)
        now = time.time()
        samples.extend((item.message.window.end, now) for item, new in zip(items, fresh)
                       if new and isinstance(item.message, Summary))
        return fresh

    store.ingest_many = timed  # type: ignore[method-assign]
    signal.signal(signal.SIGTERM, lambda *_: service.stop.set())

    def ready() -> None:  # the parent publishes nothing before every instance subscribed
        if service.ingestor.subscribed.wait(120):
            Path(record + ".ready").touch()

    threading.Thread(target=ready, daemon=True).start()
    service.run()
    Path(record).write_text(json.dumps(samples))
    return 0


def serve_raw(port: int, group: str, record: str) -> int:
    """Child: a QoS 1 subscriber in ``group`` that only reads each payload's window end;
    on SIGTERM, writes (window end, arrival time) of what it received to ``record``."""
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        samples.append((window_end(msg.payload), time.time()))

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"raw-{uuid.uuid4().hex[:8]}",
                    protocol=mqtt.MQTTv5)
    c.on_message = on_message
    c.on_connect = lambda cl, *_: cl.subscribe(f"$share/{group}/{ROOT}/+/+/summary", qos=1)
    c.on_subscribe = lambda *_: Path(record + ".ready").touch()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    c.connect("127.0.0.1", port)
    c.loop_start()
    progress = Path(record + ".n")
    while not stop.wait(0.2):
        progress.write_text(str(len(samples)))
    c.disconnect()
    c.loop_stop()
    Path(record).write_text(json.dumps(samples))
    return 0


@dataclass
class Child:
    proc: subprocess.Popen[bytes]
    record: Path

    def ready(self) -> bool:
        """Whether the child has subscribed (the broker confirmed it)."""
        return Path(f"{self.record}.ready").exists()

    def received(self) -> int:
        """How many messages a raw subscriber has received (it says every 0.2 s)."""
        try:
            return int(Path(f"{self.record}.n").read_text() or 0)
        except (OSError, ValueError):
            return 0

    def cpu_s(self) -> float:
        """User + system CPU seconds of the process so far."""
        return cpu_of(self.proc.pid)

    def finish(self) -> list[tuple[float, float]]:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        data: list[tuple[float, float]] = json.loads(self.record.read_text())
        return data


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pg_cpu(pids: Sequence[int]) -> dict[int, float]:
    """CPU seconds of those of these PostgreSQL backends that /proc shows (none when the
    server runs on another host; a short-lived connection may be gone)."""
    out = {}
    for pid in pids:
        try:
            out[pid] = cpu_of(pid)
        except (OSError, IndexError, ValueError):
            continue
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the backends seen both times spent in between (nan: none was)."""
    common = before.keys() & after.keys()
    return sum(after[p] - before[p] for p in common) if common else float("nan")


def backends(url: str, poller: Sequence[int]) -> list[int]:
    """Process ids of the PostgreSQL backends serving this database, but ours."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = "
                            "current_database() AND pid <> pg_backend_pid()").fetchall()
    return [int(r[0]) for r in rows if int(r[0]) not in poller]


def spawn(args: list[str], record: Path, log: Path) -> Child:
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *args,
                             "--record", str(record)], stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)
    return Child(proc, record)


# ----------------------------------------------------------------------------- one repeat


@dataclass
class Run:
    """What one phase measured."""

    stored_rate: float = 0.0
    lags: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    pg_cpu_s: float = float("nan")
    """CPU of the collectors' PostgreSQL backends (nan: not readable from /proc)."""
    burst_rate: float = 0.0
    bytes_per_row: float = 0.0
    rows: int = 0


def lags_of(samples: list[tuple[float, float]], t0: float, first: int,
            compress: float) -> list[float]:
    """Wall seconds from each summary's due time to its commit (or arrival)."""
    origin, scale = BASE + 60.0 * first, compress / 60.0
    return [seen - (t0 + (end - 60.0 - origin) * scale) for end, seen in samples]


def wait_for(predicate: Any, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def raw_phase(port: int, fleet: list[list[tuple[str, bytes]]], args: Any, tmp: Path,
              late: list[float]) -> tuple[Run, Run]:
    """Paced and burst through raw subscribers: (paced, burst)."""
    paced, burst = Run(), Run()
    minutes, devices = args.minutes, args.devices
    children = [spawn(["--raw", str(port)], tmp / f"raw-{i}.json", tmp / "raw.log")
                for i in range(args.instances)]
    if not wait_for(lambda: all(c.ready() for c in children), 120):
        for c in children:
            c.proc.kill()
        raise SystemExit("the raw subscribers did not subscribe")
    pubs = Publishers(port, args.publishers)
    t0 = time.time() + 0.5
    pubs.paced(fleet[:minutes], 0, t0, args.compress)
    time.sleep(1.0)
    start = time.time()
    pubs.burst(fleet[minutes:])
    pubs.close()
    late.extend(pubs.late)
    total = devices * (minutes + args.burst)
    wait_for(lambda: sum(c.received() for c in children) >= total, 120)
    samples = [s for c in children for s in c.finish()]
    ends = sorted(seen for end, seen in samples if end >= due(0, devices, minutes))
    expected = devices * args.burst
    paced_samples = [s for s in samples if s[0] < due(0, devices, minutes)]
    paced.lags = lags_of(paced_samples, t0, 0, args.compress)
    window = (1.0 * args.compress, minutes * args.compress)
    paced.stored_rate = rate_between(sorted(s for _, s in paced_samples), t0, window)
    if len(ends) == expected and ends:
        burst.burst_rate = expected / (ends[-1] - start)
    return paced, burst


def rate_between(times: list[float], t0: float, window: tuple[float, float]) -> float:
    """Messages per second between ``t0 + window[0]`` and ``t0 + window[1]``."""
    lo, hi = t0 + window[0], t0 + window[1]
    n = sum(1 for t in times if lo <= t < hi)
    return n / (hi - lo)


def collector_phase(port: int, pg_admin: str, fleet: list[list[tuple[str, bytes]]],
                    args: Any, tmp: Path, late: list[float]) -> Run:
    """The paced fleet, then the burst, through the collector processes into a fresh
    database (dropped after)."""
    from edgewatch.collector.store import open_store
    from support.postgres import scratch_database

    with scratch_database(pg_admin, prefix="ew_fleet_") as url:
        open_store(url).close()  # the schema, before two processes race for it
        children = [spawn(["--collector", str(collector_config(tmp, i, port, url))],
                          tmp / f"collector-{i}.json", tmp / "collectors.log")
                    for i in range(args.instances)]
        counts: list[tuple[float, int]] = []
        stop = threading.Event()
        poller_pid: list[int] = []
        threading.Thread(target=poll_count, args=(url, counts, stop, poller_pid),
                         daemon=True).start()
        try:
            if not wait_for(lambda: counts and all(c.ready() for c in children), 120):
                raise SystemExit("the collectors did not subscribe (see collectors.log)")
            run = drive_collectors(port, url, fleet, args, children, counts,
                                   backends(url, poller_pid), late)
        finally:
            stop.set()
            for c in children:
                if c.proc.poll() is None and not run_finished(c):
                    c.proc.kill()
        run.rows, size = store_size(url)
        run.bytes_per_row = size / max(run.rows, 1)
    return run


def run_finished(child: Child) -> bool:
    """Stop a child cleanly (SIGTERM); whether it ended in time."""
    child.proc.send_signal(signal.SIGTERM)
    try:
        child.proc.wait(30)
    except subprocess.TimeoutExpired:
        return False
    return True


def collector_config(tmp: Path, i: int, port: int, url: str) -> Path:
    cfg = tmp / f"collector-{i}.toml"
    cfg.write_text(f'[mqtt]\nport = {port}\nclient_id = "fleet-collector-{i}"\n'
                   f'shared_group = "collectors"\n[store]\nurl = "{url}"\n'
                   "[http]\nport = 0\n")
    return cfg


def drive_collectors(port: int, url: str, fleet: list[list[tuple[str, bytes]]], args: Any,
                     children: list[Child], counts: list[tuple[float, int]],
                     pg_pids: list[int], late: list[float]) -> Run:
    run = Run()
    minutes, devices = args.minutes, args.devices
    pubs = Publishers(port, args.publishers)
    cpu0, pg0 = sum(c.cpu_s() for c in children), pg_cpu(pg_pids)
    t0 = time.time() + 0.5
    pubs.paced(fleet[:minutes], 0, t0, args.compress)
    total = devices * minutes
    if not wait_for(lambda: counts[-1][1] >= total, 600):
        raise SystemExit(f"only {counts[-1][1]} of {total} summaries stored")
    run.cpu_s = sum(c.cpu_s() for c in children) - cpu0
    run.pg_cpu_s = cpu_delta(pg0, pg_cpu(pg_pids))
    run.stored_rate = count_rate(counts, t0, (1.0 * args.compress, minutes * args.compress))
    start = time.time()
    pubs.burst(fleet[minutes:])
    total += devices * args.burst
    if wait_for(lambda: counts[-1][1] >= total, 600):
        done = next(t for t, n in counts if n >= total)
        run.burst_rate = devices * args.burst / (done - start)
    pubs.close()
    late.extend(pubs.late)
    samples = [s for c in children for s in c.finish()]
    run.lags = lags_of([s for s in samples if s[0] < due(0, devices, minutes)], t0, 0,
                       args.compress)
    return run


def poll_count(url: str, counts: list[tuple[float, int]], stop: threading.Event,
               pid: list[int]) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        pid.append(conn.info.backend_pid)
        while not stop.is_set():
            try:
                row = conn.execute("SELECT count(*) FROM messages WHERE kind = 'summary'"
                                   ).fetchone()
            except psycopg.Error:  # the schema not there yet
                row = None
            if row is not None:
                counts.append((time.time(), int(row[0])))
            stop.wait(0.5)


def count_rate(counts: list[tuple[float, int]], t0: float,
               window: tuple[float, float]) -> float:
    """Rows per second stored between ``t0 + window[0]`` and ``t0 + window[1]``, from the
    polled counts (interpolated)."""
    def at(t: float) -> float:
        for (ta, na), (tb, nb) in zip(counts, counts[1:]):
            if ta <= t <= tb:
                return na + (nb - na) * (t - ta) / max(tb - ta, 1e-9)
        return float(counts[-1][1])

    lo, hi = t0 + window[0], t0 + window[1]
    return (at(hi) - at(lo)) / (hi - lo)


def store_size(url: str) -> tuple[int, int]:
    """(summary rows, bytes of every table with indexes and TOAST)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        rows = conn.execute("SELECT count(*) FROM messages WHERE kind = 'summary'").fetchone()
        size = conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = 'public'"
        ).fetchone()
    return int(rows[0] if rows else 0), int(size[0] if size and size[0] else 0)


def broker_for(workdir: Path) -> Any:
    """A private Mosquitto as production would run it: no per-packet logging, and a queue
    per client large enough for a burst (the default 1,000 would drop messages)."""
    from support.broker import MosquittoBroker, free_port

    port = free_port()
    workdir.mkdir(parents=True)
    return MosquittoBroker(port=port, workdir=workdir, config="\n".join([
        "allow_anonymous true", "persistence false", f"log_dest file {workdir}/mosquitto.log",
        "log_type error", "log_type warning", "max_queued_messages 1000000",
        f"listener {port} 127.0.0.1"]))


# ----------------------------------------------------------------------------- storage


@dataclass
class Storage:
    """Bytes per row (with indexes and TOAST) of each kind of row retention keeps."""

    raw: float
    hourly: float
    daily: float
    covered: float
    """One original seq of a rolled-up window, in the ``covered`` table."""


def storage_phase(pg_admin: str, devices: int, days: int) -> Storage:
    """Store ``days`` of one-minute windows for ``devices`` devices (the store's own
    ingest_many, no broker), then roll them up hourly, then daily, as retention does;
    measure each kind of row (VACUUM FULL first: live bytes, as in a steady state)."""
    from edgewatch.collector.store import Item, open_store
    from edgewatch.collector.store.retention import Retention
    from support.postgres import scratch_database

    template = codec.decode("summary", json.dumps(EXAMPLE).encode())
    assert isinstance(template, Summary)
    n = days * SUMMARIES_PER_DAY
    end = BASE + days * 86400.0
    with scratch_database(pg_admin, prefix="ew_fleet_") as url, open_store(url) as store:
        for d in range(devices):
            items = [Item("summary", FLEET, device_id(d), msgspec.structs.replace(
                template, device=device_id(d), boot_id="boot-1", seq=s,
                window=Window(start=BASE + 60.0 * s, end=BASE + 60.0 * (s + 1))),
                BASE + 60.0 * (s + 1)) for s in range(n)]
            for i in range(0, n, 1000):
                store.ingest_many(items[i:i + 1000])
        raw = table_bytes(url)
        store.prune(Retention(raw_s=0.0, hourly_s=86400.0, daily_s=0.0, alerts_s=0.0,
                              quarantine_s=0.0), end + 3600.0)
        hourly = table_bytes(url)
        store.prune(Retention(raw_s=0.0, hourly_s=0.0, daily_s=0.0, alerts_s=0.0,
                              quarantine_s=0.0), end + 86400.0)
        daily = table_bytes(url)
    return Storage(raw=raw["messages"][1] / raw["messages"][0],
                   hourly=hourly["messages"][1] / hourly["messages"][0],
                   daily=daily["messages"][1] / daily["messages"][0],
                   covered=daily["covered"][1] / max(daily["covered"][0], 1))


def table_bytes(url: str) -> dict[str, tuple[int, int]]:
    """(rows, bytes with indexes and TOAST) of the messages and covered tables."""
    import psycopg

    out = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("messages", "covered"):
            conn.execute(f"VACUUM FULL {table}")
            rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            size = conn.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()
            out[table] = (int(rows[0]) if rows else 0, int(size[0]) if size else 0)
    return out


def steady_state(st: Storage, raw_days: float, hourly_days: float,
                 daily_days: float) -> list[tuple[str, float, float]]:
    """(kind, rows, bytes) per device once the store holds ``daily_days`` of history under
    this retention (the ``[retention]`` keys of the collector configuration)."""
    hourly_rows = 24.0 * (hourly_days - raw_days)
    daily_rows = daily_days - hourly_days
    covered = SUMMARIES_PER_DAY * (daily_days - raw_days)
    raw_rows = SUMMARIES_PER_DAY * raw_days
    return [("raw windows", raw_rows, raw_rows * st.raw),
            ("hourly rollups", hourly_rows, hourly_rows * st.hourly),
            ("daily rollups", daily_rows, daily_rows * st.daily),
            ("covered seqs", covered, covered * st.covered)]


# ----------------------------------------------------------------------------- report


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(q / 100.0 * len(ordered)), len(ordered) - 1)]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(args: Any, raws: list[tuple[Run, Run]], cols: list[Run], size: int,
           late: list[float], load: tuple[float, float]) -> None:
    offered = args.devices * 60.0 / args.compress / 60.0
    print(f"{args.devices} simulated devices, one summary each per simulated minute "
          f"({size} bytes, MessagePack+zlib), a simulated minute every {args.compress:g} s "
          f"(x{60.0 / args.compress:g} real time): {offered:.0f} msg/s offered; "
          f"{args.minutes} minutes paced + {args.burst} as a burst; {args.instances} "
          f"instances in one shared group; median of {args.repeats} repeats")
    print(f"devices are MQTT identities multiplexed over {args.publishers} publisher "
          "connections (not 10,000 sockets); broker: one private Mosquitto; "
          "store: one fresh PostgreSQL database per repeat")
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} at the start and "
          f"{load[1]:.1f} at the end (other work shares the cores)")
    print(f"publisher lateness against the schedule: p50 {pct(late, 50) * 1000:.0f} ms, "
          f"p99 {pct(late, 99) * 1000:.0f} ms (counted in the lags below)")
    print()
    print(f"{'':42}{'collectors':>12}{'raw broker':>12}{'ratio':>10}")

    def line(name: str, ours: float, base: float, unit: str = "") -> None:
        ratio = ours / base if base else float("nan")
        print(f"{name:42}{ours:>12.1f}{base:>12.1f}{ratio:>10.2f}  {unit}")

    line("sustained rate, paced (msg/s)", median([c.stored_rate for c in cols]),
         median([r.stored_rate for r, _ in raws]), "stored / delivered")
    line("burst rate, catch-up (msg/s)", median([c.burst_rate for c in cols]),
         median([b.burst_rate for _, b in raws]), "stored / delivered")
    for q in (50, 95, 99):
        line(f"end-to-end lag p{q} (ms)", median([pct(c.lags, q) * 1000 for c in cols]),
             median([pct(r.lags, q) * 1000 for r, _ in raws]),
             "due -> committed / -> delivered")
    cpu = median([c.cpu_s for c in cols])
    per_k = cpu / (args.devices / 1000.0) / args.minutes
    print()
    print(f"collector CPU, all instances, paced run: {cpu:.1f} s = {per_k:.3f} CPU-s per "
          f"1,000 devices per simulated minute ({per_k / 60.0 * 1000:.1f} ms/s: "
          f"{per_k / 60.0:.4f} cores per 1,000 devices at one summary a minute)")
    pg = median([c.pg_cpu_s for c in cols])
    pg_k = pg / (args.devices / 1000.0) / args.minutes
    print(f"PostgreSQL CPU (the collectors' backends, same run): {pg:.1f} s = {pg_k:.3f} "
          "CPU-s per 1,000 devices per simulated minute")
    bpr = median([c.bytes_per_row for c in cols])
    print(f"PostgreSQL: {bpr:.0f} bytes per summary row (tables + indexes + TOAST, "
          f"{median([float(c.rows) for c in cols]):.0f} rows); {SUMMARIES_PER_DAY} rows = "
          f"{bpr * SUMMARIES_PER_DAY / 1e6:.2f} MB per device per day of raw windows")


def report_storage(args: Any, st: Storage) -> None:
    from edgewatch.config.collector import RetentionConfig

    r = RetentionConfig()
    print()
    print(f"PostgreSQL per device under the default retention (raw_days {r.raw_days:g}, "
          f"hourly_days {r.hourly_days:g}, daily_days {r.daily_days:g}), from bytes per row "
          f"measured on {args.storage_devices} devices x {args.storage_days} days stored and "
          "rolled up (tables + indexes + TOAST, after VACUUM FULL):")
    print(f"{'':18}{'bytes/row':>10}{'rows':>12}{'MB':>10}")
    per_row = {"raw windows": st.raw, "hourly rollups": st.hourly,
               "daily rollups": st.daily, "covered seqs": st.covered}
    total_rows = total = 0.0
    for kind, rows, size in steady_state(st, r.raw_days, r.hourly_days, r.daily_days):
        print(f"{kind:18}{per_row[kind]:>10.0f}{rows:>12.0f}{size / 1e6:>10.1f}")
        total_rows += rows
        total += size
    print(f"{'total':18}{'':>10}{total_rows:>12.0f}{total / 1e6:>10.1f}")
    print(f"ingest: {SUMMARIES_PER_DAY} rows = {SUMMARIES_PER_DAY * st.raw / 1e6:.2f} MB per "
          "device per day (raw windows, before rollups)")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--minutes", type=int, default=3, help="simulated minutes, paced")
    ap.add_argument("--compress", type=float, default=6.0,
                    help="wall seconds per simulated minute")
    ap.add_argument("--burst", type=int, default=1,
                    help="simulated minutes then published as fast as possible")
    ap.add_argument("--instances", type=int, default=2)
    ap.add_argument("--publishers", type=int, default=10, help="publisher connections")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--storage-devices", type=int, default=10,
                    help="devices whose days of windows are stored and rolled up to size "
                         "each kind of row (0: skip)")
    ap.add_argument("--storage-days", type=int, default=2)
    ap.add_argument("--pg", default=os.environ.get(
        "EDGEWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--collector", help=argparse.SUPPRESS)
    ap.add_argument("--raw", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--record", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.collector:
        return serve_collector(args.collector, args.record)
    if args.raw:
        return serve_raw(args.raw, "raw", args.record)
    if args.minutes < 2:
        ap.error("--minutes: at least 2 (the first is warm-up)")
    started = time.time()
    fleet = encode_fleet(args.devices, args.minutes + args.burst)
    print(f"encoded {args.devices * (args.minutes + args.burst)} summaries in "
          f"{time.time() - started:.0f} s", file=sys.stderr)
    load0 = os.getloadavg()[0]
    raws: list[tuple[Run, Run]] = []
    cols: list[Run] = []
    late: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            work = Path(tmp) / f"r{r}"
            work.mkdir()
            with broker_for(work / "raw-broker") as broker:
                raws.append(raw_phase(broker.port, fleet, args, work, late))
            with broker_for(work / "broker") as broker:
                cols.append(collector_phase(broker.port, args.pg, fleet, args, work, late))
            print(f"repeat {r + 1}/{args.repeats} done", file=sys.stderr)
        for log in Path(tmp).glob("r*/collectors.log"):
            text = log.read_text()
            if "Traceback" in text:
                print(f"collector errors ({log}):\n{text[-3000:]}", file=sys.stderr)
    storage = (storage_phase(args.pg, args.storage_devices, args.storage_days)
               if args.storage_devices > 0 else None)
    report(args, raws, cols, len(fleet[0][0][1]), late, (load0, os.getloadavg()[0]))
    if storage is not None:
        report_storage(args, storage)
    return 0


if __name__ == "__main__":
    sys.exit(main())
