"""Evidence frames received from devices: chunks kept on disk, files joined and verified, and
the dataset folder a retraining pipeline takes (docs/evidence.md).

Layout under ``[evidence] dir``::

    <device>/manifest.json                   what the device said it has (evidence.list/send)
    <device>/<frame id>/<file>               a file joined from its chunks, sha256 verified
    <device>/<frame id>/.<file>.parts/<i>    chunk i of a file still incomplete
    <device>/<frame id>/.<file>.parts/meta.json   its size, sha256 and chunk count

The ingest (:class:`ChunkStore.put`, on the store thread, before the chunk's PUBACK) writes
each chunk atomically (temporary file, rename). When the last chunk of a file is there, the
chunks are joined, the bytes hashed, and the file written (fsync'd, renamed) only if the hash
is the one the chunks carry; a mismatch discards the chunks (the next pull asks again). A
chunk with another sha256 than the parts already kept (the device rewrote the sidecar: a
later trigger) replaces them. Chunk numbers, sizes and names are bounded by the contract
(:class:`~edgewatch.contracts.evidence.EvidenceChunk`), device ids by the topic rules, so no
name can leave the directory.

:func:`build_dataset` writes the folder ``edgewatch evidence pull`` produces: YOLO detection
labels from the model's pre-labels, the images, the sidecars and a contact sheet.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import html
import json
import logging
import os
import shutil
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from edgewatch.contracts.digest import sha256
from edgewatch.contracts.evidence import EvidenceChunk, EvidenceFrame
from edgewatch.contracts.topics import ID_PATTERN

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def _write_atomic(path: Path, data: bytes, sync: bool = False) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        if sync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


class ChunkStore:
    """Chunks, joined files and manifests of evidence frames, per device (module doc)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self.stored = 0
        """Chunks written."""
        self.duplicates = 0
        """Chunks of files already complete (sent twice)."""
        self.joined = 0
        self.corrupt = 0
        """Files whose joined chunks did not hash to their sha256 (discarded)."""

    def _device_dir(self, device: str) -> Path:
        if not ID_PATTERN.fullmatch(device):
            raise ValueError(f"not a device id: {device[:130]!r}")
        return self.root / device

    def file_path(self, device: str, frame: str, name: str) -> Path:
        return self._device_dir(device) / frame / name

    def _parts(self, device: str, frame: str, name: str) -> Path:
        return self._device_dir(device) / frame / f".{name}.parts"

    # -- the ingest ------------------------------------------------------------------------

    def put(self, device: str, chunk: EvidenceChunk) -> str:
        """Keep one chunk: ``stored``, ``joined`` (the file is complete), ``duplicate``,
        ``corrupt`` (joined but the hash differs: discarded) or ``invalid``."""
        if chunk.count < 1 or chunk.index >= chunk.count:
            return "invalid"
        with self._lock:
            final = self.file_path(device, chunk.frame, chunk.file)
            parts = self._parts(device, chunk.frame, chunk.file)
            if final.exists():
                if _sha256(final) == chunk.sha256:
                    self.duplicates += 1
                    return "duplicate"
                final.unlink()  # the device has a newer version (a sidecar rewritten)
            meta = {"size": chunk.size, "sha256": chunk.sha256, "count": chunk.count}
            meta_path = parts / "meta.json"
            if parts.exists():
                try:
                    old = json.loads(meta_path.read_bytes())
                except (OSError, ValueError):
                    old = None
                if old != meta:
                    shutil.rmtree(parts)
            parts.mkdir(parents=True, exist_ok=True)
            if not meta_path.exists():
                _write_atomic(meta_path, json.dumps(meta).encode())
            _write_atomic(parts / str(chunk.index), chunk.data)
            self.stored += 1
            have = self._present(parts)
            if len(have) < chunk.count:
                return "stored"
            return self._join(parts, final, meta)

    @staticmethod
    def _present(parts: Path) -> set[int]:
        try:
            return {int(p.name) for p in parts.iterdir() if p.name.isdigit()}
        except FileNotFoundError:
            return set()

    def _join(self, parts: Path, final: Path, meta: dict[str, Any]) -> str:
        data = b"".join((parts / str(i)).read_bytes() for i in range(meta["count"]))
        shutil.rmtree(parts)
        if len(data) != meta["size"] or sha256(data).hexdigest() != meta["sha256"]:
            self.corrupt += 1
            log.warning("evidence file %s: joined chunks do not match its sha256; discarded "
                        "(the next pull asks for it again)", final.name)
            return "corrupt"
        _write_atomic(final, data, sync=True)
        self.joined += 1
        return "joined"

    # -- manifests -------------------------------------------------------------------------

    def manifest(self, device: str) -> dict[str, EvidenceFrame]:
        """Frame id -> what the device said about the frame (latest answer)."""
        path = self._device_dir(device) / MANIFEST
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return {}
        frames = msgspec.json.decode(raw, type=list[EvidenceFrame])
        return {f.id: f for f in frames}

    def merge(self, device: str, frames: Iterable[EvidenceFrame]) -> dict[str, EvidenceFrame]:
        """Add a device's answer to its manifest (newer answers replace a frame's entry)."""
        with self._lock:
            known = self.manifest(device)
            for f in frames:
                known[f.id] = f
            folder = self._device_dir(device)
            folder.mkdir(parents=True, exist_ok=True)
            ordered = sorted(known.values(), key=lambda f: (f.captured, f.id))
            _write_atomic(folder / MANIFEST, msgspec.json.encode(ordered))
            return known

    def select(self, device: str, alert: str | None = None,
               kind: str | None = None) -> list[EvidenceFrame]:
        """The manifest's frames of an alert and/or a trigger kind, capture order."""
        out = []
        for f in self.manifest(device).values():
            if alert is not None and not any(t.alert_id == alert for t in f.triggers):
                continue
            if kind is not None and not any(t.kind == kind for t in f.triggers):
                continue
            out.append(f)
        return sorted(out, key=lambda f: (f.captured, f.id))

    # -- progress --------------------------------------------------------------------------

    def missing(self, device: str, frames: Sequence[EvidenceFrame]) -> dict[str, list[int]]:
        """File name -> the chunk numbers not here yet, for the incomplete files."""
        out: dict[str, list[int]] = {}
        for f in frames:
            for file in f.files:
                if self.file_path(device, f.id, file.name).exists():
                    continue
                parts = self._parts(device, f.id, file.name)
                count = file.chunks
                with contextlib.suppress(OSError, ValueError, KeyError):
                    count = int(json.loads((parts / "meta.json").read_bytes())["count"])
                have = self._present(parts)
                out[file.name] = [i for i in range(count) if i not in have]
        return out

    def present(self, device: str, frames: Sequence[EvidenceFrame]) -> int:
        """Chunks here (a complete file counts all of its chunks)."""
        n = 0
        for f in frames:
            for file in f.files:
                if self.file_path(device, f.id, file.name).exists():
                    n += file.chunks
                else:
                    n += len(self._present(self._parts(device, f.id, file.name)))
        return n


def _sha256(path: Path) -> str:
    return sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- the dataset


@dataclasses.dataclass
class Dataset:
    """What :func:`build_dataset` wrote."""

    out: Path
    images: int = 0
    boxes: int = 0
    classes: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    """Frames not written: a file of theirs is not here (yet)."""


def yolo_line(index: int, box: Sequence[float]) -> str:
    """``class x_center y_center width height``, normalised, from ``x1, y1, x2, y2``
    normalised (clipped to the frame)."""
    x1, y1, x2, y2 = (min(max(float(v), 0.0), 1.0) for v in box)
    x1, x2 = min(x1, x2), max(x1, x2)
    y1, y2 = min(y1, y2), max(y1, y2)
    return (f"{index} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} "
            f"{y2 - y1:.6f}")


def _utc(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def build_dataset(chunks: ChunkStore, device: str, frames: Sequence[EvidenceFrame],
                  out: str | Path, *, title: str = "") -> Dataset:
    """Write the dataset folder of ``frames`` (those whose files are complete):

    - ``images/<id>.jpg``, ``sidecars/<id>.json`` (edgewatch.evidence/1);
    - ``labels/<id>.txt``: YOLO lines ``class x_center y_center width height`` (normalised)
      from the sidecar's pre-labels (detections at or above the operating threshold; an
      empty file: no detection; none for classifiers and raw models);
    - ``classes.txt`` (one name a line, line number = class index) and ``data.yaml``
      (Ultralytics: ``path``, ``train``, ``val``, ``nc``, ``names``): the classes met in
      these frames, ordered by the model's class id;
    - ``index.html``: the contact sheet (thumbnails with boxes, trigger, time, alert,
      features), self-contained: no script, no network.
    """
    out = Path(out)
    ds = Dataset(out)
    kept: list[tuple[EvidenceFrame, dict[str, Any]]] = []
    for f in frames:
        image = chunks.file_path(device, f.id, f"{f.id}.jpg")
        side = chunks.file_path(device, f.id, f"{f.id}.json")
        if not (image.exists() and side.exists()):
            ds.skipped.append(f.id)
            continue
        try:
            sidecar = json.loads(side.read_bytes())
        except ValueError:
            ds.skipped.append(f.id)
            continue
        kept.append((f, sidecar))
    names: dict[int, str] = {}
    for _, sidecar in kept:
        labels = sidecar.get("prelabels") or {}
        if labels.get("kind") == "detections":
            for cid, name in zip(labels.get("class_ids", []), labels.get("names", [])):
                names.setdefault(int(cid), str(name))
    order = sorted(names)
    index_of = {cid: i for i, cid in enumerate(order)}
    ds.classes = [names[c] for c in order]
    for sub in ("images", "labels", "sidecars"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for f, sidecar in kept:
        shutil.copyfile(chunks.file_path(device, f.id, f"{f.id}.jpg"),
                        out / "images" / f"{f.id}.jpg")
        shutil.copyfile(chunks.file_path(device, f.id, f"{f.id}.json"),
                        out / "sidecars" / f"{f.id}.json")
        labels = sidecar.get("prelabels") or {}
        if labels.get("kind") == "detections":
            lines = [yolo_line(index_of[int(c)], box)
                     for c, box in zip(labels.get("class_ids", []), labels.get("boxes", []))]
            ds.boxes += len(lines)
            (out / "labels" / f"{f.id}.txt").write_text(
                "".join(line + "\n" for line in lines))
        ds.images += 1
    (out / "classes.txt").write_text("".join(n + "\n" for n in ds.classes))
    yaml = [f"# edgewatch evidence of {device}: YOLO labels are the model's pre-labels "
            "(check them before training)", "path: .", "train: images", "val: images",
            f"nc: {len(ds.classes)}", "names:"]
    yaml += [f"  {i}: {json.dumps(n)}" for i, n in enumerate(ds.classes)]
    (out / "data.yaml").write_text("\n".join(yaml) + "\n")
    (out / "index.html").write_text(contact_sheet(device, kept, title))
    return ds


_FEATURES = ("brightness", "contrast", "sharpness", "noise", "saturation", "edge_density",
             "det_count", "score_max", "near_threshold")
_CSS = """body{font-family:sans-serif;margin:1em;background:#fafafa}
.grid{display:flex;flex-wrap:wrap;gap:12px}
.card{width:320px;background:#fff;border:1px solid #ccc;padding:6px;font-size:12px}
.pic{position:relative;width:320px}
.pic img{width:320px;display:block}
.box{position:absolute;border:2px solid #e22;box-sizing:border-box}
.box span{position:absolute;top:-14px;left:0;background:#e22;color:#fff;font-size:10px}
table{border-collapse:collapse}td{padding:0 6px 0 0;vertical-align:top}"""


def _trigger_text(t: dict[str, Any]) -> str:
    if t.get("kind") == "alert":
        return f"alert {t.get('rule', '')} ({t.get('phase', '')}) {t.get('alert_id', '')}"
    return str(t.get("kind", ""))


def contact_sheet(device: str, kept: Sequence[tuple[EvidenceFrame, dict[str, Any]]],
                  title: str = "") -> str:
    """The contact sheet: one card per frame (image with its pre-label boxes, triggers,
    capture time, footage time, alert, features, faults, anomaly)."""
    esc = html.escape
    cards = []
    for f, side in kept:
        labels = side.get("prelabels") or {}
        boxes = []
        if labels.get("kind") == "detections":
            for box, name, score in zip(labels.get("boxes", []), labels.get("names", []),
                                        labels.get("scores", [])):
                x1, y1, x2, y2 = (min(max(float(v), 0.0), 1.0) for v in box)
                boxes.append(
                    f'<div class="box" style="left:{x1 * 100:.2f}%;top:{y1 * 100:.2f}%;'
                    f'width:{(x2 - x1) * 100:.2f}%;height:{(y2 - y1) * 100:.2f}%">'
                    f"<span>{esc(str(name))} {float(score):.2f}</span></div>")
        features = side.get("features") or {}
        rows = [("triggers", "; ".join(_trigger_text(t) for t in side.get("triggers", []))),
                ("captured", _utc(side.get("captured"))),
                ("footage time", f"{side['time']:.1f} s" if side.get("time") is not None
                 else "-"),
                ("alert", ", ".join(sorted({t.get("alert_id", "") for t in
                                            side.get("triggers", []) if t.get("alert_id")}))
                 or "-"),
                ("faults", ", ".join(side.get("faults") or []) or "-"),
                ("anomaly", "-" if side.get("anomaly") is None else f"{side['anomaly']:.2f}")]
        rows += [(k, "-" if features.get(k) is None else f"{features[k]:.3g}")
                 for k in _FEATURES if k in features]
        table = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows)
        cards.append(
            f'<div class="card" id="{esc(f.id)}"><div class="pic">'
            f'<img src="images/{esc(f.id)}.jpg" alt="{esc(f.id)}" loading="lazy">'
            f'{"".join(boxes)}</div><b>{esc(f.id)}</b><table>{table}</table>'
            f'<a href="sidecars/{esc(f.id)}.json">sidecar</a></div>')
    heading = esc(title or f"edgewatch evidence: {device}")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{heading}</title><style>{_CSS}</style></head><body>"
            f"<h1>{heading}</h1><p>{len(kept)} frames; boxes are the model's pre-labels "
            "(labels/*.txt, classes.txt).</p>"
            f'<div class="grid">{"".join(cards)}</div></body></html>\n')
