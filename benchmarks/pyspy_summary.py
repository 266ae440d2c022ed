"""Summarize a py-spy `--format raw` file (collapsed stacks, CPU samples only): own time per
package, the top functions by own time, and the sink's functions by inclusive time."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _parse(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame.strip())
    return (match["func"], match["file"]) if match else (frame.strip(), "?")


def _package(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/sink/" in path or path.startswith("sink/"):
        module = path.split("sink/", 1)[1].removesuffix(".py").replace("/", ".")
        return f"sink.{module}"
    if re.search(r"/python3\.\d+/", path):
        return "stdlib"
    return path


def _short(path: str) -> str:
    for marker in ("site-packages/", "/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path.rsplit("/", 1)[-1]


def summarize(raw: Path, top: int = 15) -> list[str]:
    own: Counter[tuple[str, str]] = Counter()
    inclusive: Counter[tuple[str, str]] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for text in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = text.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_parse(f) for f in stack.split(";") if "(" in f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        packages[_package(frames[-1][1])] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return ["py-spy: no samples"]
    pct = 100 / total
    lines = [
        f"py-spy, sink run (CPU samples at 100 Hz, {total:,} samples = {total / 100:.1f} CPU s):",
        "  own time by package:",
    ]
    lines += [f"    {n * pct:5.1f}%  {name}" for name, n in packages.most_common(top)]
    lines.append("  top functions by own time:")
    lines += [f"    {n * pct:5.1f}%  {func} ({_short(path)})" for (func, path), n in own.most_common(top)]
    lines.append("  sink functions by inclusive time:")
    sink_frames = [(k, n) for k, n in inclusive.most_common() if _package(k[1]).startswith("sink.")]
    lines += [f"    {n * pct:5.1f}%  {func} ({_short(path)})" for (func, path), n in sink_frames[:top]]
    return lines
