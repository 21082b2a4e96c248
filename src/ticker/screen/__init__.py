"""``ticker screen``: the festival's big screen, a web page fed live from the MQTT broker.

``state`` folds the broker's messages into what the page shows (pure, checked payloads);
``server`` subscribes with aiomqtt and serves the page and its Server-Sent Events stream;
``static/`` holds the page itself (HTML, CSS, JavaScript; no build step, nothing from the
internet).
"""

from ticker.screen.server import DEFAULT_PORT, ScreenServer, run_screen
from ticker.screen.state import Festival

__all__ = ["DEFAULT_PORT", "Festival", "ScreenServer", "run_screen"]
