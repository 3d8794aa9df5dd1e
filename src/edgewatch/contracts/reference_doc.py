"""The payload reference (docs/mqtt.md), written from the contract types themselves.

Each message type becomes a table of its fields, nested structs get tables of their own, and
every bound the decoder enforces is spelled out, so the page cannot disagree with the code
(tests/test_docs.py compares the checked-in page with :func:`payload_reference`).
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from typing import Any

import msgspec
import msgspec.inspect as mi

from edgewatch.contracts import (
    advisory,
    alert,
    codec,
    command,
    evidence,
    model_transfer,
    reference,
    status,
    summary,
    update_status,
)

MESSAGES: tuple[tuple[str, type[msgspec.Struct]], ...] = (
    ("summary", summary.Summary),
    ("alert", alert.Alert),
    ("status", status.Status),
    ("cmd_result", command.CommandResult),
    ("reference", reference.Reference),
    ("evidence", evidence.EvidenceChunk),
    ("update/<update id>", model_transfer.ModelChunk),
    ("update_status", update_status.UpdateStatus),
    ("advisory", advisory.Advisory),
)


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (a string right after ``name: type``) of a class, joined."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, after in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) \
                and isinstance(after.value.value, str):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _bounds(t: Any) -> str:
    parts = []
    for attr, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        v = getattr(t, attr, None)
        if v is not None:
            parts.append(f"{word} {v:g}" if isinstance(v, float) else f"{word} {v}")
    if getattr(t, "min_length", None):
        parts.append(f"at least {t.min_length}")
    if getattr(t, "max_length", None) is not None:
        parts.append(f"at most {t.max_length}")
    if getattr(t, "pattern", None):
        parts.append("no NUL" if "x00" in t.pattern else f"matching `{t.pattern}`")
    return f" ({', '.join(parts)})" if parts else ""


def anchor(heading: str) -> str:
    """The id MkDocs (and GitHub) give a heading: ``alert: Alert`` -> ``alert-alert``.

    >>> anchor("alert: Alert")
    'alert-alert'
    """
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", heading).strip().lower())


def type_name(t: Any, nested: list[type]) -> str:
    """A readable name for a msgspec type, registering structs met on the way.

    A struct links to its table: a message's is under ``### <leaf>: <Name>``, a nested
    struct's under ``#### <Name>`` (tests/test_docs.py builds the site, which checks anchors).
    """
    if isinstance(t, mi.StructType):
        if t.cls not in nested:
            nested.append(t.cls)
        leaf = next((leaf for leaf, cls in MESSAGES if cls is t.cls), None)
        heading = t.cls.__name__ if leaf is None else f"{leaf}: {t.cls.__name__}"
        return f"[{t.cls.__name__}](#{anchor(heading)})"
    if isinstance(t, mi.UnionType):
        return " or ".join(type_name(x, nested) for x in t.types)
    if isinstance(t, mi.LiteralType):
        return " or ".join(f'`"{v}"`' if isinstance(v, str) else f"`{v}`" for v in t.values)
    if isinstance(t, mi.ListType):
        return f"list of {type_name(t.item_type, nested)}{_bounds(t)}"
    if isinstance(t, mi.DictType):
        return (f"map {type_name(t.key_type, nested)} to {type_name(t.value_type, nested)}"
                f"{_bounds(t)}")
    simple = {mi.IntType: "integer", mi.FloatType: "number", mi.StrType: "string",
              mi.BoolType: "boolean", mi.NoneType: "null"}
    for kind, name in simple.items():
        if isinstance(t, kind):
            return name + _bounds(t)
    return type(t).__name__


def _default(f: mi.Field) -> str:
    if f.required:
        return "required"
    if f.default_factory is not msgspec.NODEFAULT:
        return f"`{msgspec.json.encode(f.default_factory()).decode()}`"
    return f"`{msgspec.json.encode(f.default).decode()}`"


def struct_table(cls: type[msgspec.Struct], nested: list[type]) -> list[str]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    docs = field_docs(cls)
    lines = []
    if info.tag_field:
        lines.append(f"`{info.tag_field}` is `\"{info.tag}\"`. ")
    if info.array_like:
        lines.append("Encoded as an array of the fields in this order, not as an object. ")
    head = [(" ".join(lines)).strip(), ""] if lines else []
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for f in info.fields:
        cells = [f"`{f.name}`", type_name(f.type, nested), _default(f), docs.get(f.name, "")]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return [*head, *rows]


def payload_reference() -> str:
    """The generated part of docs/mqtt.md."""
    out = ["### Rejection reasons", "",
           "A payload that does not decode into its contract is not stored; the collector",
           "counts it in `edgewatch_collector_bad_payloads_total{reason}` with one of:", "",
           "| reason | meaning |", "|---|---|"]
    out += [f"| `{k}` | {v} |" for k, v in codec.REASONS.items()]
    out += ["", "No string anywhere in a message, map keys included, may hold a NUL character "
            "(`invalid`): PostgreSQL's text cannot.", ""]
    nested: list[type] = []
    for leaf, cls in MESSAGES:
        doc = " ".join((cls.__doc__ or "").split())
        out += [f"### {leaf}: {cls.__name__}", "", doc, "", *struct_table(cls, nested), ""]
    done: set[type] = {cls for _, cls in MESSAGES}
    while nested:
        cls = nested.pop(0)
        if cls in done:
            continue
        done.add(cls)
        doc = " ".join((cls.__doc__ or "").split())
        out += [f"#### {cls.__name__}", "", doc, "", *struct_table(cls, nested), ""]
    return "\n".join(out).rstrip() + "\n"
