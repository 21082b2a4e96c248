"""Broker URLs: ``mqtt://[user:pass@]host[:port]`` and ``mqtts://...``, parsed once, shown redacted.

A URL carries a password, so :class:`MqttUrl` never shows it: its ``str`` and ``repr`` print
``***`` instead, and every error message about a URL is built from a redacted copy of the text.
The user name is shown (like SQLAlchemy's URLs): it says who is connecting, and it is not a secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from ticker.errors import TickerError

#: The port a scheme uses when the URL gives none (IANA's MQTT and MQTT-over-TLS ports).
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}

_EXPECTED = "expected mqtt://[user:pass@]host[:port] or mqtts://..."


class PublishError(TickerError):
    """A publishing problem told in one line (bad URL, unreachable broker, refused login).

    The CLI prints ``str(exc)`` and exits non-zero; the text never holds a password.
    """


@dataclass(frozen=True, slots=True)
class MqttUrl:
    """A parsed broker URL. ``str()`` and ``repr()`` hide the password."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def tls(self) -> bool:
        """Whether the connection is TLS (``mqtts://``)."""
        return self.scheme == "mqtts"

    def __str__(self) -> str:
        auth = ""
        if self.username is not None:
            auth = self.username + (":***" if self.password is not None else "") + "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{auth}{host}:{self.port}"

    def __repr__(self) -> str:
        return f"MqttUrl('{self}')"


def redact(text: str) -> str:
    """URL-ish text with the password of any ``user:password@`` replaced by ``***``.

    Works on malformed text too, so an error message can quote what the user typed.

    >>> redact("mqtt://ticker:s3cret@localhost:1883")
    'mqtt://ticker:***@localhost:1883'
    """
    if "@" not in text:
        return text
    head, _, tail = text.rpartition("@")
    scheme, sep, userinfo = head.partition("://")
    if not sep:
        scheme, userinfo = "", head
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}{sep}{user}{':***' if colon else ''}@{tail}"


def parse_url(url: str | MqttUrl) -> MqttUrl:
    """Parse a broker URL, or raise :class:`PublishError` with one line saying what is wrong.

    >>> parse_url("mqtt://localhost")
    MqttUrl('mqtt://localhost:1883')
    >>> parse_url("mqtts://ticker:pw@broker.example:8884")
    MqttUrl('mqtts://ticker:***@broker.example:8884')
    """
    if isinstance(url, MqttUrl):
        return url
    text = url.strip() if isinstance(url, str) else ""
    if not text:
        raise PublishError(f"no MQTT broker URL given ({_EXPECTED})")

    def bad(why: str) -> PublishError:
        return PublishError(f"bad MQTT URL {redact(text)!r}: {why} ({_EXPECTED})")

    if "://" not in text:
        raise bad("no scheme")
    if any(ch.isspace() for ch in text):
        raise bad("it contains white space")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        why = "the port is not a number from 1 to 65535" if "port" in str(exc).lower() else (
            "the host is not a valid address")
        raise bad(why) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise bad(f"the scheme is {parts.scheme!r}, not mqtt or mqtts")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise bad("a broker URL has no path, query or fragment")
    host = parts.hostname
    if not host:
        raise bad("no host")
    if port == 0:
        raise bad("port 0 is not a broker's port")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and not username:
        raise bad("a password needs a user name")
    return MqttUrl(scheme=scheme, host=host, port=port or DEFAULT_PORTS[scheme],
                   username=username, password=password)
