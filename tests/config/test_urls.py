"""HTTP(S) URLs in configuration (edgewatch.config.urls): checked when read, shown without
secrets."""

from __future__ import annotations

import pytest

from edgewatch.config.urls import check_url, where
from edgewatch.errors import ConfigError


def test_an_http_url_is_kept_without_its_trailing_slash() -> None:
    assert check_url("http://alertmanager:9093/", "alerting.alertmanager_url") == \
        "http://alertmanager:9093"
    assert check_url("", "alerting.webhook_url") == ""  # not configured


@pytest.mark.parametrize("url", ["ftp://host/x", "alertmanager:9093", "http://", "http://h:99999"])
def test_anything_else_names_the_key(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^alerting.webhook_url: expected an http"):
        check_url(url, "alerting.webhook_url")


def test_a_url_in_a_log_line_or_an_error_has_no_credentials() -> None:
    assert where("https://user:secret@hooks.example/x?token=1") == "https://hooks.example"
    with pytest.raises(ConfigError) as err:
        check_url("ftp://user:secret@host/", "alerting.webhook_url")
    assert "secret" not in str(err.value)
