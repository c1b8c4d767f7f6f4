"""LibreOffice and Gnumeric for the tests: the stand-ins for the programs staff save forms with.

One way to call each, one timeout, and a LibreOffice profile of its own for every call: two
LibreOffice processes sharing a profile block each other (parallel test runs, a developer's
own LibreOffice open), and a test must never touch a person's real profile.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest

SOFFICE = shutil.which("soffice")
SSCONVERT = shutil.which("ssconvert")
PDFINFO = shutil.which("pdfinfo")
PDFTOTEXT = shutil.which("pdftotext")

#: Seconds one conversion may take. A cold LibreOffice start with a fresh profile takes 5-20 s
#: alone; on a busy 2-core CI machine several times that. A hang still fails, just not at once.
OFFICE_TIMEOUT = 240

SOFFICE_MISSING = "LibreOffice (soffice) is not on PATH: install libreoffice-calc"
SSCONVERT_MISSING = "Gnumeric (ssconvert) is not on PATH: install gnumeric"
PDFINFO_MISSING = "pdfinfo is not on PATH: install poppler-utils"
PDFTOTEXT_MISSING = "pdftotext is not on PATH: install poppler-utils"

needs_soffice = pytest.mark.skipif(SOFFICE is None, reason=SOFFICE_MISSING)
needs_ssconvert = pytest.mark.skipif(SSCONVERT is None, reason=SSCONVERT_MISSING)
needs_pdfinfo = pytest.mark.skipif(PDFINFO is None, reason=PDFINFO_MISSING)


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, timeout=OFFICE_TIMEOUT, check=False)
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace")
        pytest.fail(f"{what} failed (exit {done.returncode}): {err}", pytrace=False)


def soffice_convert_all(sources: Sequence[Path], fmt: str, outdir: Path) -> list[Path]:
    """Convert ``sources`` with one LibreOffice run; return the output files, in order.

    ``fmt`` is what ``--convert-to`` takes: ``pdf``, ``xlsx`` or ``xlsx:Calc MS Excel 2007 XML``.
    Skips the test when LibreOffice is missing; fails it when a file does not come out.
    """
    if SOFFICE is None:
        pytest.skip(SOFFICE_MISSING)
    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lo-profile-") as profile:
        _run(
            [
                SOFFICE,
                "--headless",
                f"-env:UserInstallation={Path(profile).as_uri()}",
                "--convert-to",
                fmt,
                "--outdir",
                str(outdir),
                *map(str, sources),
            ],
            "LibreOffice",
        )
    suffix = fmt.split(":", 1)[0]
    outputs = [outdir / f"{src.stem}.{suffix}" for src in sources]
    for out in outputs:
        assert out.is_file() and out.stat().st_size > 0, f"LibreOffice produced no {out.name}"
    return outputs


def soffice_convert(src: Path, fmt: str, outdir: Path) -> Path:
    """Convert one file with LibreOffice (see :func:`soffice_convert_all`); return the output."""
    return soffice_convert_all([src], fmt, outdir)[0]


def soffice_resave(data: bytes, work: Path) -> bytes:
    """Open ``data`` in LibreOffice and save it as .xlsx, as a LibreOffice user does."""
    work.mkdir(parents=True, exist_ok=True)
    src = work / "in.xlsx"
    src.write_bytes(data)
    return soffice_convert(src, "xlsx", work / "out").read_bytes()


def ssconvert(src: Path, dst: Path) -> Path:
    """Convert ``src`` to ``dst`` with Gnumeric (the format follows ``dst``'s suffix)."""
    if SSCONVERT is None:
        pytest.skip(SSCONVERT_MISSING)
    dst.parent.mkdir(parents=True, exist_ok=True)
    _run([SSCONVERT, str(src), str(dst)], "Gnumeric")
    assert dst.is_file() and dst.stat().st_size > 0, f"Gnumeric produced no {dst.name}"
    return dst


def gnumeric_resave(data: bytes, work: Path) -> bytes:
    """Open ``data`` in Gnumeric and save it as .xlsx."""
    work.mkdir(parents=True, exist_ok=True)
    src = work / "in.xlsx"
    src.write_bytes(data)
    return ssconvert(src, work / "gnumeric.xlsx").read_bytes()


def pdf_info(pdf: Path) -> str:
    """What ``pdfinfo`` says about ``pdf`` (pages, page size)."""
    if PDFINFO is None:
        pytest.skip(PDFINFO_MISSING)
    done = subprocess.run(
        [PDFINFO, str(pdf)], capture_output=True, text=True, timeout=OFFICE_TIMEOUT, check=True
    )
    return done.stdout


def pdf_pages(pdf: Path) -> int:
    """How many pages LibreOffice printed into ``pdf``."""
    if PDFINFO is None:
        # LibreOffice writes uncompressed page objects: count them.
        return len(re.findall(rb"/Type\s*/Page(?!s)", pdf.read_bytes()))
    match = re.search(r"^Pages:\s+(\d+)$", pdf_info(pdf), re.MULTILINE)
    assert match, f"pdfinfo gave no page count for {pdf.name}"
    return int(match[1])


def pdf_text(pdf: Path) -> str:
    """The text of ``pdf`` as printed, laid out line by line (``pdftotext -layout``)."""
    if PDFTOTEXT is None:
        pytest.skip(PDFTOTEXT_MISSING)
    done = subprocess.run(
        [PDFTOTEXT, "-layout", str(pdf), "-"],
        capture_output=True,
        text=True,
        timeout=OFFICE_TIMEOUT,
        check=True,
    )
    return done.stdout
