"""Broker URLs: parsing, one-line errors, and passwords that never show."""

from __future__ import annotations

import pytest

from ticker.publish import MqttUrl, Publisher, PublishError, RunInfo, parse_url, redact


@pytest.mark.parametrize(("text", "expected"), [
    ("mqtt://localhost", MqttUrl("mqtt", "localhost", 1883)),
    ("mqtt://127.0.0.1:1884", MqttUrl("mqtt", "127.0.0.1", 1884)),
    ("mqtts://broker.example", MqttUrl("mqtts", "broker.example", 8883)),
    ("MQTT://h:1/", MqttUrl("mqtt", "h", 1)),
    ("mqtt://[::1]:1883", MqttUrl("mqtt", "::1", 1883)),
    ("mqtt://ticker:p%40ss@h:2", MqttUrl("mqtt", "h", 2, "ticker", "p@ss")),
    ("mqtt://ticker@h", MqttUrl("mqtt", "h", 1883, "ticker", None)),
])
def test_parse(text: str, expected: MqttUrl) -> None:
    assert parse_url(text) == expected


@pytest.mark.parametrize(("text", "why"), [
    ("", "no MQTT broker URL"),
    ("localhost:1883", "no scheme"),
    ("http://localhost", "scheme is 'http'"),
    ("mqtt://", "no host"),
    ("mqtt://h:notaport", "port"),
    ("mqtt://h:70000", "port"),
    ("mqtt://h:0", "port 0"),
    ("mqtt://h/topic", "no path"),
    ("mqtt://h?x=1", "no path"),
    ("mqtt://:pw@h", "needs a user name"),
    ("mqtt://h ost", "white space"),
    ("mqtt://[::1", "not a valid address"),
])
def test_a_malformed_url_is_one_clear_line(text: str, why: str) -> None:
    with pytest.raises(PublishError) as caught:
        parse_url(text)
    message = str(caught.value)
    assert why in message and "\n" not in message
    with pytest.raises(PublishError):  # the publisher refuses it before any thread or socket
        Publisher(text, RunInfo("r"))


@pytest.mark.parametrize("text", [
    "mqtt://ticker:hunter2@h:notaport",
    "mqtt:/ticker:hunter2@h",
    "ticker:hunter2@h",
    "ftp://ticker:hunter2@h",
])
def test_errors_never_show_the_password(text: str) -> None:
    with pytest.raises(PublishError) as caught:
        parse_url(text)
    assert "hunter2" not in str(caught.value)
    assert "***" in str(caught.value)


def test_str_and_repr_hide_the_password() -> None:
    url = parse_url("mqtts://ticker:hunter2@broker.example:8884")
    assert str(url) == "mqtts://ticker:***@broker.example:8884"
    assert "hunter2" not in repr(url) and url.password == "hunter2" and url.tls
    publisher = Publisher(url, RunInfo("r"))
    assert "hunter2" not in repr(publisher) and "hunter2" not in str(publisher.report())
    assert redact("mqtt://a:b@c") == "mqtt://a:***@c" and redact("mqtt://c") == "mqtt://c"


def test_a_ca_file_needs_tls_and_must_exist(tmp_path) -> None:
    with pytest.raises(PublishError, match="not TLS"):
        Publisher("mqtt://h", RunInfo("r"), ca_file=__file__)
    with pytest.raises(PublishError, match="not found"):
        Publisher("mqtts://h", RunInfo("r"), ca_file=tmp_path / "missing.pem")
