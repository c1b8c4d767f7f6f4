"""zipread: the one bounded zip reader, its limits from [parse] max_file_mb, and the sniff it
serves running in the sandboxed worker."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from refundflow import sniff as sniff_module
from refundflow.forms import read_form
from refundflow.sniff import FileKind, sniff
from refundflow.zipread import DEFAULT_LIMITS, Package, ZipError, ZipFault, ZipLimits

from conftest import Invoke, drop, make_form


def with_extra_parts(data: bytes, count: int) -> bytes:
    """The workbook with ``count`` more (empty, harmless) parts, as a sloppy writer leaves."""
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, "a") as zf:
        for i in range(count):
            zf.writestr(f"customXml/pad{i}.bin", b"")
    return buf.getvalue()


def one_part(payload: bytes, *, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        zf.writestr("xl/part.xml", payload)
    return buf.getvalue()


@pytest.fixture(scope="module")
def crowded() -> bytes:
    """A filled form with 1,500 parts in all: over 1,000, under 2,000."""
    return with_extra_parts(make_form(), 1500)


def test_default_limits_are_those_of_the_default_max_file_mb() -> None:
    limits = ZipLimits.for_max_file_mb(20)
    assert limits == DEFAULT_LIMITS
    assert (limits.entries, limits.total_bytes, limits.loaded_part_bytes) == (
        2000,
        100 << 20,
        32 << 20,
    )


@pytest.mark.parametrize(
    ("max_file_mb", "kind"),
    [
        pytest.param(20, FileKind.XLSX, id="default-20mb-takes-2000-parts"),
        pytest.param(5, FileKind.CORRUPT, id="5mb-takes-1000-parts"),
    ],
)
def test_the_part_count_a_package_may_have_follows_max_file_mb(
    crowded: bytes, max_file_mb: int, kind: FileKind
) -> None:
    result = sniff(crowded, name="a.xlsx", limits=ZipLimits.for_max_file_mb(max_file_mb))
    assert result.kind is kind, result.detail


def test_a_workspace_with_a_smaller_max_file_mb_refuses_a_package_of_too_many_parts(
    root: Path, run: Invoke, crowded: bytes
) -> None:
    config = root / "refundflow.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("# max_file_mb = 20", "max_file_mb = 5"), encoding="utf-8")
    drop(root, "申请.xlsx", crowded)
    result = run("process")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("[已拒收] 申请.xlsx: 退回:文件已损坏或不完整"), result.output


def test_the_same_package_is_routed_at_the_default_max_file_mb(
    root: Path, run: Invoke, crowded: bytes
) -> None:
    drop(root, "申请.xlsx", crowded)
    result = run("process")
    assert result.exit_code == 0, result.output
    assert result.output == "[已流转] 申请.xlsx: TKD20261123-001 → 技术部(待技术部核实)\n"


def test_the_watchers_own_process_does_not_sniff(
    root: Path, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sniff runs in the sandboxed worker with the read: a sniffer broken in this process
    (where the CLI runs) changes nothing."""

    def broken(_job: object) -> tuple[FileKind, str]:
        raise AssertionError("sniffed in the watcher's process")

    monkeypatch.setattr(sniff_module, "_classify", broken)
    drop(root, "申请.xlsx", make_form())
    drop(root, "截图.pdf", b"%PDF-1.4\n%\xe2\xe3\n")
    result = run("process")
    assert result.exit_code == 0, result.output
    assert sorted(result.output.splitlines()) == [
        "[已拒收] 截图.pdf: 退回:这是一个 PDF 文件,不是 Excel 工作簿",
        "[已流转] 申请.xlsx: TKD20261123-001 → 技术部(待技术部核实)",
    ]


def test_a_part_read_whole_is_checked_against_its_crc() -> None:
    data = bytearray(one_part(b"<x>" + b"a" * 200 + b"</x>", method=zipfile.ZIP_STORED))
    at = bytes(data).index(b"aaaa")
    data[at] = ord("b")
    package = Package(bytes(data))
    info = package.infos[0]
    with pytest.raises(ZipError) as caught:
        package.read(info, 1 << 20)
    assert caught.value.fault is ZipFault.CRC
    # Only looking for patterns, the sniff reads it all the same.
    assert b"".join(package.chunks(info, verify=False)).startswith(b"<x>ba")


def test_a_part_is_never_inflated_beyond_the_callers_limit() -> None:
    package = Package(one_part(b"<x/>" * 1000))
    with pytest.raises(ZipError) as caught:
        package.read(package.infos[0], 100)
    assert caught.value.fault is ZipFault.PART_TOO_LARGE


def test_a_local_header_naming_another_part_is_damage() -> None:
    data = one_part(b"<x/>").replace(b"xl/part.xml", b"xl/evil.xml", 1)  # the local header
    package = Package(data)
    with pytest.raises(ZipError) as caught:
        package.read(package.infos[0], 1 << 20)
    assert caught.value.fault is ZipFault.DAMAGED


def test_the_form_reader_reuses_the_package_the_sniff_opened() -> None:
    data = make_form()
    sniffed, package = sniff_module.sniff_package(data, name="a.xlsx")
    assert sniffed.kind is FileKind.XLSX and package is not None
    assert read_form(data, package=package) == read_form(data)
