"""The deployment manifest (``edgewatch manifest``): what was deployed, written once per
deployment and kept with the model (docs/maintenance.md).

Built from the configuration, the model file and the reference the agent would start with:
the model's name, version, sha256 and adapter, the preprocessing, the labels, the operating
thresholds, the reference's id and what it was built from, the fields the people deploying
fill in the ``[deployment]`` section (owner, training data, evaluation, notes), the time
and the versions of edgewatch and onnxruntime. :func:`manifest_markdown` renders it for
people; :func:`write_manifest` writes both.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import onnxruntime

from edgewatch import FEATURE_SET_VERSION, __version__
from edgewatch.agent.app import device_id
from edgewatch.agent.delivery.status import config_sha256, deployment_fields
from edgewatch.agent.inference.engine import file_sha256
from edgewatch.agent.inference.model_check import read_label_lines
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.agent.window.versions import ReferenceVersions
from edgewatch.config.agent import AgentConfig
from edgewatch.errors import ConfigError

SCHEMA = "edgewatch.deployment/1"
JSON_NAME = "deployment-manifest.json"
MARKDOWN_NAME = "deployment-manifest.md"


def _utc(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="seconds")


def _reference(cfg: AgentConfig, path: str | None) -> tuple[ReferenceProfile, str]:
    """The reference the agent starts with (as ``edgewatch.agent.profiling.load_reference``):
    ``path``, else the active one of ``reference.versions_dir``, else ``reference.path``."""
    if path is None and cfg.reference.versions_dir:
        versions = ReferenceVersions(cfg.reference.versions_dir)
        ident = versions.active_id()
        if ident:
            return versions.load(ident), str(versions.dir / f"{ident}.json")
    chosen = path if path is not None else cfg.reference.path
    if not chosen:
        raise ConfigError("reference.path is not set: the manifest names the reference "
                          "(build one with 'edgewatch profile build')")
    return ReferenceProfile.load(chosen), chosen


def _labels(cfg: AgentConfig) -> dict[str, Any]:
    model = cfg.model
    if not model.labels:
        return {"file": "", "sha256": "", "offset": model.resolved_labels_offset, "count": 0,
                "names": []}
    names = read_label_lines(model.labels)
    return {"file": model.labels, "sha256": file_sha256(model.labels),
            "offset": model.resolved_labels_offset, "count": sum(1 for n in names if n),
            "names": names}


def build_manifest(cfg: AgentConfig, *, config_path: str | Path | None = None,
                   reference_path: str | None = None, now: float) -> dict[str, Any]:
    """The deployment manifest of ``cfg`` (plain data, JSON-ready). The reference must
    have been built for the configured model, adapter and analysis width (else
    ProfileMismatch, as at start-up)."""
    if not cfg.model.path:
        raise ConfigError("model.path is not set: the manifest describes a model")
    model_path = Path(cfg.model.path)
    try:
        sha256 = file_sha256(model_path)
    except OSError as exc:
        raise ConfigError(f"model.path: cannot read {model_path} ({exc.strerror})") from exc
    reference, ref_path = _reference(cfg, reference_path)
    reference.check_compatible(sha256, cfg.model.adapter, cfg.features.analysis_width)
    post = cfg.model.postprocess
    filled = deployment_fields(cfg.deployment)
    return {
        "schema": SCHEMA,
        "deployed": now,
        "deployed_utc": _utc(now),
        "device": {"id": device_id(cfg), "fleet": cfg.device.fleet},
        "model": {"name": model_path.name, "version": filled["model_version"],
                  "sha256": sha256, "bytes": model_path.stat().st_size,
                  "path": str(model_path), "adapter": cfg.model.adapter,
                  "input_name": cfg.model.input_name},
        "preprocessing": dataclasses.asdict(cfg.model.preprocess),
        "labels": _labels(cfg),
        "thresholds": {"score_threshold": post.score_threshold, "near_band": post.near_band,
                       "iou_threshold": post.iou_threshold,
                       "max_detections": post.max_detections, "softmax": post.softmax},
        "reference": {"id": reference.id, "path": ref_path, "source": reference.source,
                      "frames": reference.frames, "created": reference.created,
                      "created_utc": _utc(reference.created),
                      "model_sha256": reference.model_sha256,
                      "feature_set_version": reference.feature_set_version,
                      "analysis_width": reference.analysis_width,
                      "excluded": dict(sorted(reference.excluded.items()))},
        "owner": filled["owner"],
        "training_data": filled["training_data"],
        "evaluation": filled["evaluation"],
        "notes": filled["notes"],
        "versions": {"edgewatch": __version__, "onnxruntime": onnxruntime.__version__,
                     "feature_set": FEATURE_SET_VERSION},
        "config": {"path": "" if config_path is None else str(config_path),
                   "sha256": config_sha256(config_path)},
    }


def _cell(value: Any) -> str:
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", "<br>")
    return text or "-"


def _section(title: str, rows: list[tuple[str, Any]]) -> list[str]:
    return [f"## {title}", "", "| field | value |", "|---|---|",
            *(f"| {k} | {_cell(v)} |" for k, v in rows), ""]


def manifest_markdown(manifest: dict[str, Any]) -> str:
    """The manifest for people: one table per part, the fields to fill flagged when empty."""
    m = manifest
    model, ref, labels = m["model"], m["reference"], m["labels"]
    title = f"{model['name']} {model['version']}".strip()
    evaluation = m["evaluation"]
    metrics = [(f"evaluation: {k}", v) for k, v in evaluation.items()] \
        if isinstance(evaluation, dict) and evaluation else [("evaluation", evaluation)]
    missing = [k for k in ("model_version", "owner", "training_data", "evaluation")
               if not (model["version"] if k == "model_version" else m[k])]
    return "\n".join([
        f"# Deployment manifest: {title}", "",
        f"Deployed {m['deployed_utc']} on device {m['device']['id']} (fleet "
        f"{m['device']['fleet']}). Written by `edgewatch manifest` ({m['schema']}); keep it "
        "with the model.", "",
        *_section("Model", list(model.items())),
        *_section("Preprocessing", list(m["preprocessing"].items())),
        *_section("Labels", [("file", labels["file"]), ("sha256", labels["sha256"]),
                             ("offset", labels["offset"]), ("count", labels["count"]),
                             ("names", ", ".join(n for n in labels["names"] if n))]),
        *_section("Operating thresholds", list(m["thresholds"].items())),
        *_section("Reference", list(ref.items())),
        *_section("Training data and evaluation", [
            ("owner", m["owner"]), ("training_data", m["training_data"]),
            ("notes", m["notes"]), *metrics]),
        *([f"Not filled in the configuration's [deployment] section: {', '.join(missing)}.",
           ""] if missing else []),
        *_section("Versions", list(m["versions"].items())),
        *_section("Configuration", list(m["config"].items())),
    ])


def write_manifest(manifest: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """``deployment-manifest.json`` and ``deployment-manifest.md`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / JSON_NAME, out / MARKDOWN_NAME
    json_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                         encoding="utf-8")
    md_path.write_text(manifest_markdown(manifest), encoding="utf-8")
    return json_path, md_path
