"""The flood limit (errors.deadletterqueue.max.ratio / max.consecutive): turn "every record is bad"
into a stop (DeadLetterFlood) instead of a silent drain of a broken topic into the dead-letter queue."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from .errors import DeadLetterFlood
from .model import Coord


class FloodLimit:
    """Records count in the order they are judged: good when prepared (a row for a batch) or
    settled, bad when they fail; a row the database rejects later turns bad in the window, so the
    ratio stays per record. `max_ratio` 1.0 and `max_consecutive` 0 turn a limit off."""

    def __init__(self, max_ratio: float = 1.0, ratio_window: int = 1000, max_consecutive: int = 0) -> None:
        self.max_ratio, self.ratio_window, self.max_consecutive = max_ratio, ratio_window, max_consecutive
        self._window: OrderedDict[Coord, bool] = OrderedDict()
        self.consecutive = 0

    def good(self, coord: Coord) -> None:
        self.consecutive = 0
        if self.max_ratio < 1.0:  # once per record: no call at all without a ratio limit
            self._note(coord, False)

    def good_all(self, coords: Iterable[Coord]) -> None:
        """`good` for each of `coords`, in order."""
        self.consecutive = 0
        if self.max_ratio < 1.0:
            for coord in coords:
                self._note(coord, False)

    def bad(self, coord: Coord) -> None:
        self.consecutive += 1
        self._note(coord, True)
        limit = self.max_consecutive
        if limit and self.consecutive >= limit:
            raise DeadLetterFlood(
                f"{self.consecutive} bad records in a row, the last {coord} "
                f"(SINK_ERRORS_DEADLETTERQUEUE_MAX_CONSECUTIVE={limit}); stopping instead of draining "
                "the topic into the dead-letter queue"
            )
        window = self._window
        if self.max_ratio < 1.0 and len(window) >= self.ratio_window:
            ratio = sum(window.values()) / len(window)
            if ratio > self.max_ratio:
                raise DeadLetterFlood(
                    f"{ratio:.0%} of the last {len(window)} records failed, the last {coord} "
                    f"(SINK_ERRORS_DEADLETTERQUEUE_MAX_RATIO={self.max_ratio}); stopping instead of "
                    "draining the topic into the dead-letter queue"
                )

    def _note(self, coord: Coord, bad: bool) -> None:
        if self.max_ratio >= 1.0:  # no ratio limit: nothing to keep
            return
        window = self._window
        if coord in window:
            window[coord] = window[coord] or bad
            return
        window[coord] = bad
        while len(window) > self.ratio_window:
            window.popitem(last=False)
