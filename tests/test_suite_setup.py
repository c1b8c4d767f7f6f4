"""The test suite's own setup: where the wild corpus comes from, and what happens without it.

Each case runs pytest in a child process on the corpus tests of test_sniff.py, with the
corpus variable and CI set as a clone elsewhere or a CI machine would have them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from corpus import CORPUS_VARIABLE, REPO

MANIFEST_HEAD = "name\tsha256\tsize\tkind\tdetected\tproducer\tsource_repo\tcommit\toriginal_path\n"


def corpus_tests(corpus: Path, *, ci: str | None) -> tuple[int, str]:
    """Run test_sniff's corpus tests against ``corpus``; return pytest's exit code and output."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env[CORPUS_VARIABLE] = str(corpus)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    if ci is not None:
        env["CI"] = ci
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rsfE"]
    command += ["tests/test_sniff.py", "-k", "wild_corpus"]
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    return done.returncode, done.stdout + done.stderr


def test_corpus_elsewhere_is_found_through_the_variable(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "empty.xlsx").write_bytes(b"")
    row = "empty.xlsx\t-\t0\tnon-spreadsheet\tempty (0 bytes)\t\t\t\t\n"
    (corpus / "MANIFEST.tsv").write_text(MANIFEST_HEAD + row, encoding="utf-8")

    code, output = corpus_tests(corpus, ci="true")

    assert code == 0, output
    assert "1 passed" in output, output


def test_missing_corpus_skips_naming_the_variable(tmp_path: Path) -> None:
    code, output = corpus_tests(tmp_path / "nowhere", ci=None)

    assert code == 0, output
    assert "1 skipped" in output, output
    assert f"set {CORPUS_VARIABLE} to its folder" in output, output
    assert str(tmp_path / "nowhere") in output, output


def test_missing_corpus_fails_under_ci(tmp_path: Path) -> None:
    code, output = corpus_tests(tmp_path / "nowhere", ci="true")

    assert code == 1, output
    assert "1 error" in output, output
    assert f"set {CORPUS_VARIABLE} to its folder" in output, output
    assert "CI is set, so a missing corpus fails" in output, output
