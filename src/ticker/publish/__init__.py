"""Publishing a run over MQTT: topics and payloads, the publisher, the embedded broker, ``watch``.

Import the public names from here (``from ticker.publish import Publisher``); the modules are
the implementation: ``topics`` (pure topic names and payloads), ``url`` (broker URLs),
``publisher`` (the publisher the sinks use) over ``outbox`` (what is held until acknowledged)
and ``session`` (the broker connection, its thread and loop), ``connect`` (protocols, why a
connection failed), ``upstream_workarounds`` (every workaround of aiomqtt, paho, amqtt and
asyncio), ``broker`` (the embedded amqtt broker), ``watch`` (``ticker watch``).
"""

from ticker.publish.broker import EmbeddedBroker, run_broker
from ticker.publish.connect import describe_connect_error
from ticker.publish.outbox import DeliveryReport
from ticker.publish.publisher import Publisher
from ticker.publish.topics import RunInfo
from ticker.publish.url import MqttUrl, PublishError, parse_url, redact
from ticker.publish.watch import format_message, run_watch

__all__ = [
    "DeliveryReport",
    "EmbeddedBroker",
    "MqttUrl",
    "PublishError",
    "Publisher",
    "RunInfo",
    "describe_connect_error",
    "format_message",
    "parse_url",
    "redact",
    "run_broker",
    "run_watch",
]
