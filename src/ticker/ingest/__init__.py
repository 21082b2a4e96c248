"""Real order streams in: files (``ticker import``) and MQTT (``ticker follow``).

``fields`` parses one value exactly (money, time, ids); ``orders`` is the order schema, the
column mapping, duplicate detection and rows -> batches; ``readers`` streams CSV, JSON Lines and
Parquet; ``festival`` is the default festival when no scenario is given; ``rundir`` makes an
ingested run's directory (catalogue, dead letters); ``importer`` and ``follow`` are the commands.
"""

from ticker.ingest.fields import RowError
from ticker.ingest.orders import FIELDS, MappingError, parse_mapping
from ticker.ingest.readers import InputError

__all__ = ["FIELDS", "InputError", "MappingError", "RowError", "parse_mapping"]
