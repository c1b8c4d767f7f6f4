"""The two pipelines `refundflow process` is compared with, each over a folder of forms.

    python3 bench/pipelines.py naive|floor FORMS_DIR OUT_DIR

naive: what a user would write with openpyxl: load each workbook, read its named fields,
save the routed copy (form number filled in, a history sheet added) and insert a row into a
SQLite table. floor: the least any tool must do per form: read it with calamine, copy its
bytes to the archive, fsync once and insert one SQLite row. Run as a whole process, like
`refundflow process`, so all three pay for starting Python the same way.
"""

from __future__ import annotations

import io
import os
import sqlite3
import sys
from pathlib import Path


def naive(forms: list[Path], out: Path) -> None:
    import openpyxl

    db = sqlite3.connect(out / "ledger.sqlite3")
    db.execute("CREATE TABLE forms (form_no TEXT PRIMARY KEY, order_no TEXT, amount TEXT)")
    for i, path in enumerate(forms):
        wb = openpyxl.load_workbook(io.BytesIO(path.read_bytes()))
        values = {}
        for name, dn in wb.defined_names.items():
            for sheet, ref in dn.destinations:
                values[name] = wb[sheet][ref.replace("$", "").split(":")[0]].value
        form_no = f"TKD20261123-{i + 1:03d}"
        wb["退款申请表"]["B2"] = form_no
        history = wb.create_sheet("流转记录")
        history.append(["时间", "环节", "从", "到", "经办人", "文件"])
        wb.save(out / f"{form_no}.xlsx")
        with db:
            db.execute(
                "INSERT INTO forms VALUES (?, ?, ?)",
                (form_no, str(values.get("order_no")), str(values.get("amount"))),
            )
    db.close()


def floor(forms: list[Path], out: Path) -> None:
    import python_calamine

    db = sqlite3.connect(out / "ledger.sqlite3")
    db.execute("CREATE TABLE forms (form_no TEXT PRIMARY KEY, sha TEXT)")
    for i, path in enumerate(forms):
        data = path.read_bytes()
        book = python_calamine.load_workbook(io.BytesIO(data))
        book.get_sheet_by_index(0).to_python()
        copy = out / f"{i:06d}.xlsx"
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        with db:
            db.execute("INSERT INTO forms VALUES (?, ?)", (f"TKD20261123-{i + 1:03d}", copy.name))
    db.close()


def main() -> None:
    which, forms_dir, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    forms = sorted(forms_dir.iterdir())
    out.mkdir(parents=True, exist_ok=True)
    {"naive": naive, "floor": floor}[which](forms, out)


if __name__ == "__main__":
    main()
