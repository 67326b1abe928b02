"""Shared fixtures for notifier tests."""

from __future__ import annotations

import sys
from pathlib import Path

# The receivers are imported as `tests.notifiers.receivers` (end-to-end tests reuse them), which
# needs the repository root on sys.path; `pythonpath = ["."]` in the pytest config makes this moot.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
