"""``refundflow.toml``: roles and people, folders, lists, time limits, shifts, calendar.

Every key has a default, so an empty file (or none) is a working configuration. A bad value is
refused when the tool starts, naming the file, the key and what is wrong.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .errors import ConfigError

CONFIG_FILE = "refundflow.toml"

ROLE_KEYS: tuple[str, ...] = (
    "cs",
    "tech",
    "cashier",
    "accountant",
    "director",
    "president",
    "admin",
)
ROLE_NAMES: dict[str, str] = {
    "cs": "客服部",
    "tech": "技术部",
    "cashier": "财务部出纳",
    "accountant": "财务部会计",
    "director": "财务总监",
    "president": "总裁",
    "admin": "行政部",
}
REJECTED_FOLDER = "rejected"
# Noted on every step whose signer could not be checked because the role has no roster.
UNCHECKED_SIGNER = "未配置名单,未核对签名人"

DEFAULT_BANKS: tuple[str, ...] = (
    "中国工商银行",
    "中国农业银行",
    "中国银行",
    "中国建设银行",
    "交通银行",
    "中国邮政储蓄银行",
    "招商银行",
    "中信银行",
    "中国光大银行",
    "华夏银行",
    "中国民生银行",
    "广发银行",
    "平安银行",
    "兴业银行",
    "上海浦东发展银行",
    "浙商银行",
    "渤海银行",
    "恒丰银行",
    "北京银行",
    "上海银行",
    "江苏银行",
    "宁波银行",
    "南京银行",
    "杭州银行",
    "北京农商银行",
    "上海农商银行",
    "支付宝",
    "微信支付",
)
DEFAULT_FAULTS: tuple[str, ...] = (
    "扣款成功但未收到订单号及出票验证码",
    "订单冲突",
    "支付成功但支付超时",
    "重复扣款",
)


DEFAULT_ORDER_NO_PATTERN = r"(?=.*\d{6})[A-Z0-9][A-Z0-9_-]{5,39}"


@dataclass(frozen=True)
class Limits:
    """The procedure's time limits (spec §2)."""

    fill_minutes: int = 10  # report -> form at technical department
    forward_minutes: int = 60  # technical returns it -> duty lead submits to finance
    finance_hours: int = 12  # submitted to finance -> finance's answer
    refund_hours: int = 24  # report -> money returned
    refund_working_days: int = 3  # report -> refund due, at the latest


@dataclass(frozen=True)
class Shift:
    name: str
    start: dt.time
    end: dt.time


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    roster: dict[str, tuple[str, ...]] = field(default_factory=dict)
    folders: dict[str, str] = field(default_factory=lambda: {k: k for k in ROLE_KEYS})
    banks: tuple[str, ...] = DEFAULT_BANKS
    faults: tuple[str, ...] = DEFAULT_FAULTS
    limits: Limits = field(default_factory=Limits)
    shifts: tuple[Shift, ...] = (
        Shift("白班", dt.time(8, 0), dt.time(17, 0)),
        Shift("中班", dt.time(17, 0), dt.time(23, 0)),
    )
    president_threshold: Decimal = Decimal("10000")
    form_no_prefix: str = "TKD"
    # What an order number (订单号) must look like: letters, digits and -/_ with at least six
    # digits in a row (TK20261122001); "同上", "无", "见上" are not order numbers.
    order_no_pattern: str = DEFAULT_ORDER_NO_PATTERN
    workdays: tuple[dt.date, ...] = ()  # extra working days (调休上班)
    holidays: tuple[dt.date, ...] = ()  # extra days off
    stable_seconds: float = 2.0
    rescan_seconds: float = 60.0
    incomplete_seconds: float = 60.0  # longest wait for a file still being written
    ledger: str = "refundsheets/ledger.sqlite3"
    parse_timeout_seconds: float = 20.0
    parse_memory_mb: int = 1024
    max_file_mb: int = 20
    # False: a role without a roster accepts anyone, loudly (start, status, 流转记录).
    # True: a block signed for such a role is returned, naming the missing roster.
    require_roster: bool = False
    # Run for each new breach of a time limit (alerts.py); empty: breaches are only logged.
    alert_command: tuple[str, ...] = ()
    alert_timeout_seconds: float = 30.0
    # The watcher writes each shift's handover sheet this long before the shift ends.
    handover_auto: bool = True
    handover_before_end_minutes: int = 30
    # [report]: the monthly statistics (spec step 7).
    report_finance_compiler: str = "cashier"  # whose outbox folder gets 财务退单统计表
    report_mask_mobile: bool = True  # 138****8000 in administration's monthly workbook
    report_due_over_holidays: bool = True  # due date also postponed past public holidays

    def in_roster(self, role: str, person: str) -> bool:
        """A role with no list (or an empty list) accepts anyone."""
        people = self.roster.get(role)
        return not people or person in people

    def has_roster(self, role: str) -> bool:
        """Whether the signers of ``role``'s block are checked against a list of names."""
        return bool(self.roster.get(role))

    def open_roles(self) -> tuple[str, ...]:
        """The roles whose block anyone may sign, in route order."""
        return tuple(role for role in ROLE_KEYS if not self.has_roster(role))

    def folder(self, role: str) -> str:
        return self.folders.get(role, role)


def load_config(root: Path) -> Config:
    """Read ``root/refundflow.toml``; defaults for what it leaves out."""
    path = root / CONFIG_FILE
    if not path.exists():
        return Config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"配置文件 {path} 格式错误:{exc}", hint="请按 TOML 格式修改后重试"
        ) from exc
    return parse_config(data, path=path)


def parse_config(data: dict[str, Any], *, path: Path | None = None) -> Config:
    """Turn a TOML table into a :class:`Config`, refusing anything wrong."""
    where = str(path) if path else CONFIG_FILE
    known = {
        "roster",
        "folders",
        "banks",
        "faults",
        "limits",
        "shifts",
        "president_threshold",
        "form_no_prefix",
        "order_no_pattern",
        "calendar",
        "watch",
        "ledger",
        "parse",
        "require_roster",
        "alert_command",
        "alert_timeout_seconds",
        "handover",
        "report",
    }

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"配置文件 {where} 中 {key} {problem}", hint="请修改该项后重新启动")

    for key in data:
        if key not in known:
            raise fail(key, f"是未知的配置项(可用:{'、'.join(sorted(known))})")

    def table(key: str) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise fail(key, "应为一个表([section])")
        return value

    def str_list(key: str, value: Any) -> tuple[str, ...]:
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v.strip() for v in value)
        ):
            raise fail(key, '应为非空文字的列表,例如 ["张三", "李四"]')
        return tuple(v.strip() for v in value)

    def number(key: str, value: Any, *, minimum: float = 0, or_equal: bool = False) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < minimum
            or (value == minimum and not or_equal)
        ):
            bound = "不小于" if or_equal else "大于"
            raise fail(key, f"应为{bound} {minimum:g} 的数字,现在是 {value!r}")
        return float(value)

    def dates(key: str, value: Any) -> tuple[dt.date, ...]:
        if not isinstance(value, list):
            raise fail(key, "应为日期列表,例如 [2026-10-10]")
        out = []
        for v in value:
            if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
                out.append(v)
            elif isinstance(v, str):
                try:
                    out.append(dt.date.fromisoformat(v))
                except ValueError:
                    raise fail(key, f"中的 {v!r} 不是日期(格式 YYYY-MM-DD)") from None
            else:
                raise fail(key, f"中的 {v!r} 不是日期(格式 YYYY-MM-DD)")
        return tuple(out)

    kwargs: dict[str, Any] = {"path": path}
    roster = table("roster")
    for role, people in roster.items():
        if role == "cs_lead":
            # The spec names the duty lead as a role, but on the form the duty lead acts as
            # 客服部 (its block's 领导审批, the forward to finance): one list, not two.
            raise fail(
                "roster.cs_lead", "不需要单独配置:值班负责人属于客服部,请把姓名写在 cs 名单中"
            )
        if role not in ROLE_KEYS:
            raise fail(f"roster.{role}", f"不是已知的角色(可用:{', '.join(ROLE_KEYS)})")
        kwargs.setdefault("roster", {})[role] = str_list(f"roster.{role}", people) if people else ()
    folders = {k: k for k in ROLE_KEYS}
    for role, name in table("folders").items():
        if role not in ROLE_KEYS:
            raise fail(f"folders.{role}", f"不是已知的角色(可用:{', '.join(ROLE_KEYS)})")
        if not isinstance(name, str) or not name.strip() or any(c in name for c in '/\\:*?"<>|'):
            raise fail(f"folders.{role}", "应为一个合法的文件夹名称")
        folders[role] = name.strip()
    if len(set(folders.values())) != len(folders) or "rejected" in folders.values():
        raise fail("folders", "中每个角色的文件夹必须互不相同,且不能叫 rejected")
    kwargs["folders"] = folders
    if "banks" in data:
        kwargs["banks"] = str_list("banks", data["banks"])
    if "faults" in data:
        kwargs["faults"] = str_list("faults", data["faults"])
    limits = table("limits")
    limit_kwargs = {}
    for key in (
        "fill_minutes",
        "forward_minutes",
        "finance_hours",
        "refund_hours",
        "refund_working_days",
    ):
        if key in limits:
            value = limits[key]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise fail(f"limits.{key}", f"应为正整数,现在是 {value!r}")
            limit_kwargs[key] = value
    unknown = set(limits) - set(Limits.__dataclass_fields__)
    if unknown:
        raise fail(f"limits.{sorted(unknown)[0]}", "是未知的时限项")
    kwargs["limits"] = Limits(**limit_kwargs)
    shifts = table("shifts")
    if shifts:
        parsed = []
        for name, span in shifts.items():
            try:
                start_s, end_s = (s.strip() for s in str(span).split("-"))
                parsed.append(
                    Shift(name, dt.time.fromisoformat(start_s), dt.time.fromisoformat(end_s))
                )
            except ValueError:
                raise fail(f"shifts.{name}", f'应写成 "08:00-17:00",现在是 {span!r}') from None
        kwargs["shifts"] = tuple(parsed)
    if "require_roster" in data:
        if not isinstance(data["require_roster"], bool):
            raise fail("require_roster", f"应为 true 或 false,现在是 {data['require_roster']!r}")
        kwargs["require_roster"] = data["require_roster"]
    if "alert_command" in data:
        kwargs["alert_command"] = _alert_command(data["alert_command"], fail)
    if "alert_timeout_seconds" in data:
        kwargs["alert_timeout_seconds"] = number(
            "alert_timeout_seconds", data["alert_timeout_seconds"]
        )
    handover = table("handover")
    unknown_handover = set(handover) - {"auto", "before_end_minutes"}
    if unknown_handover:
        key = f"handover.{sorted(unknown_handover)[0]}"
        raise fail(key, "是未知的配置项(可用:auto、before_end_minutes)")
    if "auto" in handover:
        if not isinstance(handover["auto"], bool):
            raise fail("handover.auto", f"应为 true 或 false,现在是 {handover['auto']!r}")
        kwargs["handover_auto"] = handover["auto"]
    if "before_end_minutes" in handover:
        value = handover["before_end_minutes"]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise fail("handover.before_end_minutes", f"应为正整数(分钟),现在是 {value!r}")
        kwargs["handover_before_end_minutes"] = value
    if "president_threshold" in data:
        raw = data["president_threshold"]
        try:
            threshold = Decimal(str(raw))
        except InvalidOperation:
            raise fail("president_threshold", f"应为金额数字,现在是 {raw!r}") from None
        if isinstance(raw, bool) or threshold <= 0:
            raise fail("president_threshold", f"应为大于 0 的金额,现在是 {raw!r}")
        kwargs["president_threshold"] = threshold
    if "form_no_prefix" in data:
        prefix = data["form_no_prefix"]
        if not isinstance(prefix, str) or not prefix.isalnum() or not prefix.isascii():
            raise fail("form_no_prefix", '应为字母或数字组成的前缀,例如 "TKD"')
        kwargs["form_no_prefix"] = prefix
    if "order_no_pattern" in data:
        pattern = data["order_no_pattern"]
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise fail("order_no_pattern", f"不是有效的正则表达式({exc})") from None
        kwargs["order_no_pattern"] = pattern
    calendar = table("calendar")
    if "workdays" in calendar:
        kwargs["workdays"] = dates("calendar.workdays", calendar["workdays"])
    if "holidays" in calendar:
        kwargs["holidays"] = dates("calendar.holidays", calendar["holidays"])
    watch = table("watch")
    if "stable_seconds" in watch:
        kwargs["stable_seconds"] = number(
            "watch.stable_seconds", watch["stable_seconds"], or_equal=True
        )
    if "rescan_seconds" in watch:
        kwargs["rescan_seconds"] = number("watch.rescan_seconds", watch["rescan_seconds"])
    if "incomplete_seconds" in watch:
        kwargs["incomplete_seconds"] = number(
            "watch.incomplete_seconds", watch["incomplete_seconds"], or_equal=True
        )
    if "ledger" in data:
        if not isinstance(data["ledger"], str) or not data["ledger"].strip():
            raise fail("ledger", "应为账本文件的路径")
        kwargs["ledger"] = data["ledger"]
    parse = table("parse")
    if "timeout_seconds" in parse:
        kwargs["parse_timeout_seconds"] = number("parse.timeout_seconds", parse["timeout_seconds"])
    if "memory_mb" in parse:
        kwargs["parse_memory_mb"] = int(number("parse.memory_mb", parse["memory_mb"], minimum=64))
    if "max_file_mb" in parse:
        kwargs["max_file_mb"] = int(number("parse.max_file_mb", parse["max_file_mb"]))
    report = table("report")
    unknown_report = set(report) - {"finance_compiler", "mask_mobile", "due_over_holidays"}
    if unknown_report:
        raise fail(f"report.{sorted(unknown_report)[0]}", "是未知的统计报表配置项")
    if "finance_compiler" in report:
        finance_roles = ("cashier", "accountant", "director")
        if report["finance_compiler"] not in finance_roles:
            raise fail(
                "report.finance_compiler",
                f"应为财务部的角色之一({'、'.join(finance_roles)}),"
                f"现在是 {report['finance_compiler']!r}",
            )
        kwargs["report_finance_compiler"] = report["finance_compiler"]
    for key, attr in (
        ("mask_mobile", "report_mask_mobile"),
        ("due_over_holidays", "report_due_over_holidays"),
    ):
        if key in report:
            if not isinstance(report[key], bool):
                raise fail(f"report.{key}", f"应为 true 或 false,现在是 {report[key]!r}")
            kwargs[attr] = report[key]
    return Config(**kwargs)


def _alert_command(value: Any, fail: Callable[[str, str], ConfigError]) -> tuple[str, ...]:
    """A list of arguments, or one string split like a shell would (but never run by one)."""
    if isinstance(value, str):
        try:
            parts = shlex.split(value)
        except ValueError as exc:
            raise fail("alert_command", f"无法拆分成命令和参数:{exc}") from None
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        parts = list(value)
    else:
        parts = []
    if not parts or not parts[0].strip():
        raise fail(
            "alert_command", '应为命令,例如 "/opt/refund/notify.sh" 或 ["python3", "notify.py"]'
        )
    return tuple(parts)


DEFAULT_CONFIG_TEXT = """\
# refundflow 配置文件 (configuration). Every key is optional; the defaults are shown.
# 修改后重新启动 refundflow watch 生效。
# Keys without a [section] come first: in TOML a key below a [section] line belongs to it.

# 金额达到此值时,财务总监审批后还须总裁审批 (amount from which the president must approve).
# president_threshold = 10000

# 退款单编号前缀 (form number prefix): TKD20261123-001
# form_no_prefix = "TKD"

# 订单号格式 (what an order number must look like, a regular expression matched against the
# whole number in upper case); the default wants letters/digits with six digits in a row.
# order_no_pattern = '(?=.*\\d{6})[A-Z0-9][A-Z0-9_-]{5,39}'

# 支付银行下拉列表 (banks offered on the form); replaces the default list.
# banks = ["中国工商银行", "中国建设银行", "招商银行"]

# 故障现象下拉列表 (fault categories; free text is still accepted).
# faults = ["扣款成功但未收到订单号及出票验证码", "订单冲突", "支付成功但支付超时"]

# 账本 (SQLite ledger), relative to the workspace root
# ledger = "refundsheets/ledger.sqlite3"

# 没有名单的角色 (a role without a roster, see [roster] below):
#   false(默认):任何人都能签署,启动时、status 和流转记录中都会提示“未配置名单”;
#   true:该角色环节签名的退款单一律退回,直到填好名单 (recommended for production sites).
# require_roster = false

# 超时提醒 (alert on each new breach of a time limit): a command run once per breach, with the
# form number, the breach (fill forward finance refund overall), its due time and the role the
# form waited on as arguments, and REFUNDFLOW_* environment variables (REFUNDFLOW_MESSAGE is a
# ready Chinese sentence). Not run through a shell. Its failure is logged, never fatal.
# alert_command = ["/usr/local/bin/refund-alert.sh"]
# alert_timeout_seconds = 30

# 各角色的人员名单 (who may sign each block): fill it in right after `refundflow init`.
# A role left out, or with an empty list, accepts anyone (see require_roster above).
# cs 包括客服部填单人员和值班负责人 (the duty lead belongs to cs).
# Role keys: cs tech cashier accountant director president admin
[roster]
# cs = ["张三", "李四"]
# tech = ["王五"]
# cashier = ["赵六"]
# accountant = ["钱七"]
# director = ["孙八"]
# president = ["周九"]
# admin = ["吴十"]

# outbox/ 下各角色的文件夹名 (folder under outbox/ per role); defaults are the role keys.
[folders]
# cs = "客服部"

# 时限 (time limits of the procedure)
[limits]
# fill_minutes = 10          # 填写退款单
# forward_minutes = 60       # 技术部返回后提交财务
# finance_hours = 12         # 财务处理
# refund_hours = 24          # 全额退款
# refund_working_days = 3    # 原则上 3 个工作日内退款

# 班次 (shifts)
[shifts]
# "白班" = "08:00-17:00"
# "中班" = "17:00-23:00"

# 值班交接单 (handover sheet): the watcher writes it into outbox/ of cs before each shift ends.
[handover]
# auto = true                # false: only `refundflow handover` writes it
# before_end_minutes = 30    # 班次结束前多少分钟生成

# 工作日历调整 (calendar overrides on top of the official Chinese holiday calendar)
[calendar]
# workdays = [2026-10-10]    # 调休上班
# holidays = [2026-12-31]    # 公司额外放假

# 监视收件箱 (watching inbox/)
[watch]
# stable_seconds = 2         # 文件大小和修改时间保持不变多少秒后才处理
# rescan_seconds = 60        # 定期全量扫描的间隔
# incomplete_seconds = 60    # 仍在写入或不完整的文件,最后变动后最多等待多少秒再按损坏退回

# 月度统计 (monthly statistics: refundflow report, and the watcher after each month's end)
[report]
# 财务退单统计表放入哪个财务角色的文件夹 (finance role whose folder gets the finance table)
# finance_compiler = "cashier"   # cashier / accountant / director
# mask_mobile = true             # 行政部月度报表中手机号显示为 138****8000(两张统计表保留完整号码)
# due_over_holidays = true       # 报送日遇法定节假日也顺延(按国家调休安排);false 只顺延双休日

# 解析不可信文件的限制 (limits for parsing untrusted files in a child process)
[parse]
# timeout_seconds = 20
# memory_mb = 1024
# max_file_mb: 更大的文件不读取直接退回;也按比例决定工作簿压缩包的上限(部件数、解压后大小)
# max_file_mb = 20
"""
