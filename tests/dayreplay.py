"""A working day replayed through `refundflow process` with --now, for the handover sheet,
the status board and the breach tests.

Friday 2026-11-20:
  D  reported 10:00, filed 10:05, verified by tech 10:31, forwarded 11:00; then it sits at
     the cashier over the weekend (finance's 12 hours end Fri 23:00, the 24-hour refund
     Sat 10:00, 3 working days Wed 2026-11-25 10:00).
Monday 2026-11-23, 白班 08:00-17:00:
  A  reported 09:00, filed 09:07, tech 09:31, forwarded 09:40, cashier 10:00, accountant
     10:30, director 11:00: refunded, waiting for customer service to tell the customer.
  B  reported 09:10, filed 09:15, tech 10:00, forwarded only at 11:32 (92 minutes: the
     60-minute limit ran out at 11:00), returned by the cashier at 12:00.
  C  reported 14:00, filed only at 14:30 (the 10-minute limit ran out at 14:10); at tech.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from refundflow.cli import cli

from conftest import ROSTER, Invoke, block, drop, edit_form, make_form, set_roster, take

D = "TKD20261120-001"
A = "TKD20261123-001"
B = "TKD20261123-002"
C = "TKD20261123-003"
MOBILE = {A: "13800138000", B: "13900139000", C: "13700137000", D: "13600136000"}
BANK = {A: "招商银行", B: "中国银行", C: "中国工商银行", D: "中国建设银行"}
AMOUNT = {A: "268.50", B: "99.00", C: "500.00", D: "1200.00"}
RETURN_REASON = "银行流水未查到该笔扣款"


def at(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M")


def _process(run: Invoke, now: str) -> str:
    result = run("process", now=now)
    assert result.exit_code == 0, result.output
    assert "[已流转]" in result.output, result.output
    return result.output


def _new(
    root: Path, run: Invoke, form: str, order: str, reported: str, filed: str, fault: str
) -> None:
    drop(
        root,
        f"新单-{order}.xlsx",
        make_form(
            order_no=order,
            reported_at=at(reported),
            purchase_time=at(reported) - dt.timedelta(hours=12),
            submitted_at=at(reported) + dt.timedelta(minutes=2),
            cs_date=at(reported) + dt.timedelta(minutes=3),
            mobile=MOBILE[form],
            bank=BANK[form],
            amount=float(AMOUNT[form]),
            fault=fault,
        ),
    )
    assert form in _process(run, filed)


def _sign(root: Path, run: Invoke, form: str, role: str, person: str, now: str, **kw: str) -> None:
    signed = at(now) - dt.timedelta(minutes=1)
    drop(
        root,
        f"{form}.xlsx",
        edit_form(take(root, role, f"{form}.xlsx"), block(role, person, signed, **kw)),
    )
    _process(run, now)


def _forward(root: Path, run: Invoke, form: str, now: str) -> None:
    drop(root, f"{form}.xlsx", take(root, "cs", f"{form}.xlsx"))  # the duty lead, unchanged
    _process(run, now)


def replay_day(root: Path, run: Invoke) -> None:
    _new(root, run, D, "TK20261120001", "2026-11-20 10:00", "2026-11-20 10:05", "重复扣款")
    _sign(root, run, D, "tech", "王五", "2026-11-20 10:31")
    _forward(root, run, D, "2026-11-20 11:00")

    _new(root, run, A, "TK20261123001", "2026-11-23 09:00", "2026-11-23 09:07", "订单冲突")
    _new(
        root, run, B, "TK20261123002", "2026-11-23 09:10", "2026-11-23 09:15", "支付成功但支付超时"
    )
    _sign(root, run, A, "tech", "王五", "2026-11-23 09:31")
    _forward(root, run, A, "2026-11-23 09:40")
    _sign(root, run, A, "cashier", "赵六", "2026-11-23 10:00")
    _sign(root, run, B, "tech", "王五", "2026-11-23 10:00")
    _sign(root, run, A, "accountant", "钱七", "2026-11-23 10:30")
    _sign(root, run, A, "director", "孙八", "2026-11-23 11:00")
    _forward(root, run, B, "2026-11-23 11:32")
    _sign(
        root,
        run,
        B,
        "cashier",
        "赵六",
        "2026-11-23 12:00",
        approval="不同意",
        opinion=RETURN_REASON,
    )
    _new(root, run, C, "TK20261123003", "2026-11-23 14:00", "2026-11-23 14:30", "订单冲突")


def new_workspace(root: Path) -> Invoke:
    """What conftest's ``root`` and ``run`` fixtures make, for module-scoped replays."""
    assert CliRunner().invoke(cli, ["init", "--root", str(root)]).exit_code == 0
    config = root / "refundflow.toml"
    text = config.read_text(encoding="utf-8").replace("# stable_seconds = 2", "stable_seconds = 0")
    config.write_text(text.replace("# auto = true", "auto = false"), encoding="utf-8")
    set_roster(root, ROSTER)

    def invoke(*args: str, now: str = "2026-11-23 09:10") -> Result:
        command, *rest = args
        return CliRunner().invoke(cli, ["--now", now, command, "--root", str(root), *rest])

    return invoke


def set_top_level(root: Path, line: str) -> None:
    """Add a top-level key to refundflow.toml (before the first [table])."""
    config = root / "refundflow.toml"
    text = config.read_text(encoding="utf-8")
    head, tail = text.split("\n[roster]\n", 1)
    config.write_text(f"{head}\n{line}\n\n[roster]\n{tail}", encoding="utf-8")


ALERT_SCRIPT = """\
import os, sys
with open(sys.argv[1], "a", encoding="utf-8") as log:
    log.write(" ".join(sys.argv[2:]) + " | " + os.environ["REFUNDFLOW_MESSAGE"] + "\\n")
"""


def alert_to_file(root: Path, log: Path) -> None:
    """Configure an alert_command that appends its arguments and message to ``log``."""
    script = root.parent / "alert.py"
    script.write_text(ALERT_SCRIPT, encoding="utf-8")
    command = json.dumps([sys.executable, str(script), str(log)], ensure_ascii=False)
    set_top_level(root, f"alert_command = {command}")
