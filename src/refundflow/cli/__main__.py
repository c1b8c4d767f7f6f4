"""``python -m refundflow.cli`` (used by the tests' subprocesses)."""

from __future__ import annotations

from . import cli

if __name__ == "__main__":
    cli(prog_name="refundflow")
