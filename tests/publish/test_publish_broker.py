"""The embedded broker (amqtt) and ``run_broker`` (``ticker broker``)."""

from __future__ import annotations

import io
import threading

import pytest

from ticker.publish import EmbeddedBroker, Publisher, PublishError, RunInfo, run_broker, topics

from .helpers import free_port, interrupt_after_first_line, make_milestones

pytestmark = [pytest.mark.network, pytest.mark.timeout(60)]


def test_port_zero_binds_a_free_port_and_stop_releases_it() -> None:
    broker = EmbeddedBroker()
    with broker:
        assert broker.running and broker.port and broker.url == f"mqtt://127.0.0.1:{broker.port}"
        port = broker.port
        with Publisher(broker.url, RunInfo("r"), protocol="3.1.1") as publisher:
            publisher.milestone(make_milestones("r", 1)[0])
            assert publisher.flush(timeout=10)
    assert not broker.running
    with EmbeddedBroker(port=port) as again:  # the port is free again
        assert again.port == port


def test_a_port_in_use_is_one_line() -> None:
    with EmbeddedBroker() as first, pytest.raises(PublishError) as caught:
        port = first.port
        EmbeddedBroker(port=port).start()
    line = str(caught.value)
    assert "\n" not in line and "address already in use" in line and str(port) in line


def test_run_broker_prints_its_url_and_stops(unique_run: str, listen) -> None:
    out, ready, stop = io.StringIO(), threading.Event(), threading.Event()
    port = free_port()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(
        run_broker("127.0.0.1", port, out=out, ready=ready, stop=stop)))
    thread.start()
    try:
        assert ready.wait(15)
        assert f"mqtt://127.0.0.1:{port}" in out.getvalue()
        with Publisher(f"mqtt://127.0.0.1:{port}", RunInfo(unique_run)) as publisher:
            publisher.milestone(make_milestones(unique_run, 1)[0])
        got = listen(port, topics.milestones_filter(unique_run)).wait_count(1)
        assert got[0].qos == 1 and got[0].retain
    finally:
        stop.set()
        thread.join(30)
    assert result == [0] and out.getvalue().endswith("stopped\n")


def test_ctrl_c_stops_ticker_broker_cleanly() -> None:
    port = free_port()
    first, out, err, code = interrupt_after_first_line(
        "import sys\nfrom ticker.publish import run_broker\n"
        "sys.exit(run_broker('127.0.0.1', int(sys.argv[1])))", str(port))
    assert f"listening on mqtt://127.0.0.1:{port}" in first
    assert code == 0 and err == "" and "stopped" in out
