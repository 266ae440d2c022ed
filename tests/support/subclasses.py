"""Subclasses of the value classes the decoders make: what no binary COPY rule may take for its
base class (their dumpers or reprs may differ), used by the PostgreSQL value tests."""

from __future__ import annotations

import datetime as dt
import enum
import uuid


class Rank(enum.IntEnum):
    ONE = 1


class Wide(int):
    pass


class Real(float):
    pass


class Text(str):
    pass


class Moment(dt.datetime):
    pass


class Day(dt.date):
    pass


class Id(uuid.UUID):
    pass
