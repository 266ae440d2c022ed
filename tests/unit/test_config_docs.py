"""config/README.md documents every setting (one table row per variable) and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

from sink.config import ENV_PREFIX, PASSTHROUGH, Settings

README = Path(__file__).resolve().parents[2] / "config" / "README.md"


def _documented() -> set[str]:
    """Variables named in the first cell of a table row: `| `SINK_X` | ... |`."""
    names: set[str] = set()
    for line in README.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            continue
        first_cell = line.split("|")[1]
        names.update(re.findall(r"`(SINK_[A-Z0-9_]+(?:__<PROP>)?)`", first_cell))
    return names


def _expected() -> set[str]:
    names = set()
    for field in Settings.model_fields:
        name = ENV_PREFIX + field.upper()
        names.add(f"{name}__<PROP>" if field in PASSTHROUGH else name)
    return names


def test_every_setting_has_a_row_in_config_readme() -> None:
    assert README.is_file(), "config/README.md is missing"
    missing = sorted(_expected() - _documented())
    assert not missing, f"settings without a row in config/README.md: {missing}"


def test_config_readme_documents_no_unknown_variable() -> None:
    unknown = sorted(_documented() - _expected())
    assert not unknown, f"config/README.md documents variables the sink does not read: {unknown}"


def test_the_passthrough_groups_are_settings() -> None:
    assert set(PASSTHROUGH) <= set(Settings.model_fields)
