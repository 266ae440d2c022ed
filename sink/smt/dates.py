"""java.text.SimpleDateFormat patterns (the common letters), for formatting and for strptime:
TimestampRouter and TimestampConverter read the patterns Connect users write."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from .base import Options


def java_date_format(pattern: str) -> Callable[[dt.datetime], str]:
    """A java.text.SimpleDateFormat pattern (the common letters) as a formatting function."""
    parts = _date_format_parts(pattern)

    def format_(when: dt.datetime) -> str:
        return "".join(p(when) if callable(p) else p for p in parts)

    return format_


_DATE_LETTERS: dict[str, Callable[[int], Callable[[dt.datetime], str]]] = {
    "y": lambda n: (lambda d: f"{d.year % 100:02d}") if n == 2 else (lambda d: f"{d.year:0{n}d}"),
    "M": lambda n: (lambda d: d.strftime("%b" if n == 3 else "%B")) if n >= 3 else (lambda d: f"{d.month:0{n}d}"),
    "d": lambda n: lambda d: f"{d.day:0{n}d}",
    "H": lambda n: lambda d: f"{d.hour:0{n}d}",
    "h": lambda n: lambda d: f"{(d.hour % 12) or 12:0{n}d}",
    "m": lambda n: lambda d: f"{d.minute:0{n}d}",
    "s": lambda n: lambda d: f"{d.second:0{n}d}",
    # `S` is the millisecond count, at least n digits (`S` of .123 s is "123", never "1"); more than three
    # letters give the sub-millisecond digits too (Java would pad the milliseconds: "SSSSSS" "000123").
    "S": lambda n: (
        (lambda d: f"{d.microsecond // 1000:0{n}d}")
        if n <= 3
        else (lambda d: f"{d.microsecond:06d}"[:n] if n <= 6 else f"{d.microsecond:06d}".ljust(n, "0"))
    ),
    "a": lambda n: lambda d: "AM" if d.hour < 12 else "PM",
    "E": lambda n: lambda d: d.strftime("%a" if n <= 3 else "%A"),
    "D": lambda n: lambda d: f"{d.timetuple().tm_yday:0{n}d}",
    "X": lambda n: lambda d: "Z" if not d.utcoffset() else d.strftime("%z")[: 3 if n == 1 else 5],
    "Z": lambda n: lambda d: d.strftime("%z"),
}


def _date_format_parts(pattern: str) -> list[Any]:
    parts: list[Any] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "'":
            end = pattern.find("'", i + 1)
            if end < 0:
                raise ValueError("unclosed quote")
            parts.append(pattern[i + 1 : end] or "'")
            i = end + 1
        elif c.isalpha():
            j = i
            while j < len(pattern) and pattern[j] == c:
                j += 1
            if c not in _DATE_LETTERS:
                raise ValueError(f"pattern letter {c!r} is not supported")
            letter = _DATE_LETTERS[c](j - i)
            if c == "X" and j - i == 3:
                letter = lambda d: "Z" if not d.utcoffset() else d.isoformat()[-6:]  # noqa: E731
            parts.append(letter)
            i = j
        else:
            parts.append(c)
            i += 1
    return parts


def date_pattern(o: Options, option: str, default: str | None) -> Callable[[dt.datetime], str] | None:
    text = o.get(option, default)
    if text is None:
        return None
    try:
        return java_date_format(text)
    except ValueError as exc:
        raise o.error(option, f"not a SimpleDateFormat pattern the sink reads ({exc})") from None


def strptime_format(pattern: str) -> str:
    """A SimpleDateFormat pattern as a strptime format (the letters `strptime` can read)."""
    table = {
        "yy": "%y",
        "MMM": "%b",
        "MMMM": "%B",
        "SSS": "%f",
        "SSSSSS": "%f",
        "a": "%p",
        "E": "%a",
        "EE": "%a",
        "EEE": "%a",
        "EEEE": "%A",
        "XXX": "%z",
        "Z": "%z",
        "X": "%z",
    }
    # A number letter of any count: SimpleDateFormat parses one digit or more (`M/d/yyyy` reads 3/7/2024).
    numbers = {"y": "%Y", "M": "%m", "d": "%d", "D": "%j", "H": "%H", "h": "%I", "m": "%M", "s": "%S"}
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "'":
            end = pattern.find("'", i + 1)
            out.append(pattern[i + 1 : end].replace("%", "%%"))
            i = end + 1
        elif c.isalpha():
            j = i
            while j < len(pattern) and pattern[j] == c:
                j += 1
            letters = pattern[i:j]
            out.append(table.get(letters) or numbers.get(c, letters))
            i = j
        else:
            out.append("%%" if c == "%" else c)
            i += 1
    return "".join(out)
