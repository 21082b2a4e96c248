"""Connecting to a broker: the protocol versions ticker speaks, and one line saying why a
connection failed (shared by the publisher, ``ticker watch`` and ``ticker screen``)."""

from __future__ import annotations

import aiomqtt

from ticker.publish.url import MqttUrl, PublishError

#: Protocol names accepted by ``Publisher(protocol=...)``.
PROTOCOLS = {"5": aiomqtt.ProtocolVersion.V5, "3.1.1": aiomqtt.ProtocolVersion.V311}

#: CONNACK codes that mean "this broker does not speak this protocol version" (3.1.1 code 1,
#: MQTT 5 reason 132): the signal to fall back from MQTT 5 to 3.1.1 (amqtt sends it).
UNSUPPORTED_PROTOCOL = {1, 132}
_AUTH_CODES = {4: "bad user name or password", 5: "not authorised",
               134: "bad user name or password", 135: "not authorised"}


class ConnectFailed(PublishError):
    """A connection attempt failed; ``str()`` is the one-line reason (the session retries, or
    with the first connection, the publisher raises it as a :class:`PublishError`)."""


def connack_code(exc: aiomqtt.MqttCodeError) -> object:
    """The CONNACK's code as a number (paho gives a ``ReasonCode`` for MQTT 5, an int else)."""
    return getattr(exc.rc, "value", exc.rc)


def describe_connect_error(exc: BaseException, url: MqttUrl, timeout: float) -> str:
    """One line saying why connecting to ``url`` failed (never the password)."""
    if isinstance(exc, aiomqtt.MqttCodeError) and exc.rc is not None:
        code = connack_code(exc)
        if isinstance(code, int) and code in _AUTH_CODES:
            why = _AUTH_CODES[code]
        else:
            why = str(exc.rc) if hasattr(exc.rc, "value") else str(exc).partition("] ")[2]
            why = (why or f"code {code}")
        return f"MQTT broker {url} refused the connection: {why[:1].lower()}{why[1:]}"
    text = " ".join(str(exc).split())
    low = text.lower()
    if "timed out" in low:
        line = f"MQTT broker {url} did not answer within {timeout:g} s"
    elif "refused" in low:
        line = f"cannot connect to MQTT broker {url}: connection refused (is a broker running?)"
    elif any(s in low for s in ("name or service", "nodename nor servname", "name resolution",
                                "no address associated", "getaddrinfo")):
        line = f"cannot connect to MQTT broker {url}: unknown host {url.host!r}"
    elif "ssl" in low or "certificate" in low or "tls" in low:
        line = f"TLS handshake with MQTT broker {url} failed: {text}"
    else:
        line = f"cannot connect to MQTT broker {url}: {text or type(exc).__name__}"
    if url.password:
        line = line.replace(url.password, "***")
    return line
