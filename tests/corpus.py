"""Where the wild-spreadsheet corpus is (kept light: parser workers import the test modules)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Set it to the corpus folder when ``shared/`` is not beside the clone.
CORPUS_VARIABLE = "REFUNDFLOW_CORPUS"
CORPUS = Path(
    os.environ.get(CORPUS_VARIABLE) or REPO.parent / "shared" / "corpus" / "wild-spreadsheets"
).expanduser()
