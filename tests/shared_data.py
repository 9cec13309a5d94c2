"""The real data some tests read (``../shared/data``, read-only), and a mark that skips them without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set by setup.sh (which also finds it beside the checkout a clone came from); else ../shared/data.
SHARED_DATA = Path(os.environ.get("AERIALSEG_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
RASTERS = SHARED_DATA / "rasters"


def needs_shared_data(*paths: Path) -> pytest.MarkDecorator:
    """Skip (with the reason) unless every one of ``paths`` from the shared data folder exists."""
    missing = [str(p.relative_to(SHARED_DATA)) if p.is_relative_to(SHARED_DATA) else str(p)
               for p in paths if not p.exists()]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} from the shared data folder "
                              f"{SHARED_DATA}, which is absent (set AERIALSEG_SHARED_DATA to where it is)")
