"""Old module paths kept importable after the 0.2 layout, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import sys
import warnings


def alias(old: str, new: str) -> None:
    """Make module ``old`` the moved module ``new`` (same object, so one copy of everything)."""
    warnings.warn(f"{old} moved to {new}", DeprecationWarning, stacklevel=3)
    sys.modules[old] = importlib.import_module(new)
