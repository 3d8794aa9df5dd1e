"""The ``[deployment]`` section (edgewatch.config.agent) and the tables of values the typed
configuration reads for it (edgewatch.config.typed)."""

from __future__ import annotations

from typing import Any

import pytest

from edgewatch.config.agent import AgentConfig, parse_config
from edgewatch.config.typed import describe
from edgewatch.errors import ConfigError


def test_evaluation_is_a_table_of_numbers_or_a_sentence() -> None:
    table = parse_config({"deployment": {"evaluation": {"mAP": 1, "recall": 0.5}}})
    assert table.deployment.evaluation == {"mAP": 1.0, "recall": 0.5}
    text = parse_config({"deployment": {"evaluation": "eval/2026-01.pdf"}})
    assert text.deployment.evaluation == "eval/2026-01.pdf"
    assert parse_config({}).deployment.evaluation == {}
    [field] = [f for f in describe(AgentConfig) if f.key == "deployment.evaluation"]
    assert field.type == "table of float | str"


@pytest.mark.parametrize("section", [
    {"evaluation": {"mAP": "high"}},
    {"evaluation": 0.4},
    {"evaluation": {"mAP": float("inf")}},
    {"evaluation": {"x" * 129: 0.4}},
    {"owner": "x" * 4097},
    {"model_version": "v" * 129},
    {"model_version": 2},
    {"training": "COCO"},
])
def test_bad_deployment_values_are_refused(section: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="deployment"):
        parse_config({"deployment": section})
