"""The ``refundflow`` command: a thin layer over the library.

Library errors become a message with a fix hint and exit status 1; each command's docstring
is its --help. The group is in ``base``; each module registers its commands on it.
"""

from __future__ import annotations

from . import demo, look, papers, prepare, run  # each registers its commands on the group
from .base import cli

__all__ = ["cli", "demo", "look", "papers", "prepare", "run"]
