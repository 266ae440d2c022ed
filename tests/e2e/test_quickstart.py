"""`sink quickstart` (what `make quickstart` runs) works end to end on a machine with nothing running."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_quickstart_lands_every_record_and_prints_a_summary() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sink", "quickstart"], capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = re.search(r"rows in table orders\s+(\d+)\s+\(expected (\d+)\)", done.stdout)
    assert rows is not None, done.stdout
    assert rows.group(1) == rows.group(2)
    assert "records consumed and committed" in done.stdout
    assert "every record landed" in done.stdout
