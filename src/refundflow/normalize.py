"""What people really type into the form → canonical values.

Pure functions, one per kind of cell. Each takes a cell value as python-calamine returns it
(``str``, ``float``, ``int``, ``bool``, ``datetime``/``date``/``time``/``timedelta``, or ``None``
/ ``""`` for an empty cell) and returns the canonical value, ``None`` for an empty cell, or raises
:class:`ValueProblem` with a :class:`~refundflow.errors.Reason` and a Chinese message saying what
is wrong and what format is expected. The message does not name the field: the form reader
prefixes it with the label and the cell (``购买时间(D5)缺少分钟:…``).

Decisions worth knowing:

* Full-width ASCII (``１３８``, ``：``, ``（）``, U+3000 space) becomes half-width everywhere;
  other Chinese punctuation (。、“”) is kept. This is narrower than NFKC on purpose: NFKC would
  also rewrite ``①``, ``㎡`` or ``…`` in people's free text.
* Date-times are kept to the minute. Seconds are dropped (truncated) whether the cell holds a real
  date-time or text with seconds, because that is what the form shows (``yyyy-mm-dd hh:mm``
  displays 14:05:37 as 14:05): the same moment gives the same value however it was entered.
  Sub-second noise from the float serial (14:05:59.9996) is rounded to the second first, as
  Excel does before formatting.
* A date without a time, a time without a date and an hour without minutes are *ambiguous*
  (``AMBIGUOUS_DATETIME``): the procedure measures 10-minute limits, so we never guess.
* ``1 234.50`` is refused as ambiguous: with a space as thousands separator it cannot be told
  apart from two amounts (``100 200``). A full-width comma or ``、`` between digits is a Chinese
  list separator, never grouping, so ``100，200`` is two amounts.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal, InvalidOperation

from .errors import Reason
from .layout import APPROVAL_CHOICES

__all__ = [
    "DATETIME_EXAMPLE",
    "ValueProblem",
    "amount",
    "approval",
    "datetime_minute",
    "form_no",
    "mobile",
    "order_no",
    "person",
    "text",
]

DATETIME_EXAMPLE = "2026-11-03 14:05"
_DATETIME_FIX = f"请按 {DATETIME_EXAMPLE} 的格式填写(精确到分钟)"
_AMOUNT_FIX = "请只填写一个金额数字,最多两位小数,例如 1234.50"
_MOBILE_FIX = "手机号码应为11位数字,以1开头,例如 13800138000"

# Years a form can plausibly mention; outside this a value is a typo, not a date.
_MIN_YEAR = 1900
_MAX_YEAR = 2999
_EXCEL_EPOCH_1900 = dt.datetime(1899, 12, 30)  # serial 1 = 1900-01-01 (with Lotus' leap bug)
_EXCEL_EPOCH_1904 = dt.datetime(1904, 1, 1)


class ValueProblem(ValueError):
    """A cell value that cannot be turned into the canonical value of its kind."""

    def __init__(self, reason: Reason, message: str) -> None:
        # Both in args so the exception survives pickling (it may cross a process boundary).
        super().__init__(reason, message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return self.message


Cell = object
"""A cell value as python-calamine returns it (kept loose: the file is untrusted)."""

# --- text ------------------------------------------------------------------------------------

# Full-width ASCII variants U+FF01..U+FF5E map to U+0021..U+007E; U+3000 is the ideographic
# space. U+FFE5 (full-width yen) → ¥. Zero-width characters and the BOM vanish; NBSP is a space.
_HALF_WIDTH: dict[int, int | None] = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_HALF_WIDTH.update({0x3000: 0x20, 0xFFE5: 0xA5, 0x00A0: 0x20, 0x2002: 0x20, 0x2003: 0x20})
_HALF_WIDTH.update(dict.fromkeys((0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF)))
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{2,}")


def half_width(s: str) -> str:
    """Full-width ASCII and spaces → half-width; everything else untouched."""
    return s.translate(_HALF_WIDTH)


def _number_text(v: float) -> str:
    # calamine returns every number as float: 13800138000.0 must read as 13800138000.
    if math.isfinite(v) and v.is_integer():
        return str(int(v))
    return repr(v)


def text(v: Cell, *, multiline: bool = False) -> str | None:
    """Any cell → stripped half-width text with whitespace runs collapsed; empty → ``None``.

    ``multiline`` keeps line breaks (Alt+Enter in long opinions) but drops blank lines and
    collapses spaces within each line; otherwise every whitespace run becomes one space.
    """
    if v is None:
        return None
    if isinstance(v, bool):  # before int: bool is an int
        s = "TRUE" if v else "FALSE"
    elif isinstance(v, int):
        s = str(v)
    elif isinstance(v, float):
        s = _number_text(v)
    elif isinstance(v, dt.datetime):
        s = v.strftime("%Y-%m-%d %H:%M:%S" if v.second else "%Y-%m-%d %H:%M")
    elif isinstance(v, dt.date):
        s = v.isoformat()
    elif isinstance(v, dt.time):
        s = v.strftime("%H:%M:%S" if v.second else "%H:%M")
    else:
        s = str(v)
    s = half_width(s).replace("\r\n", "\n").replace("\r", "\n")
    if multiline:
        lines = (_SPACES.sub(" ", line).strip() for line in s.split("\n"))
        s = _BLANK_LINES.sub("\n", "\n".join(lines)).strip()
    else:
        s = " ".join(s.split())
    return s or None


_CJK_GAP = re.compile(r"(?<=[\u3400-\u9fff])\s+(?=[\u3400-\u9fff])")


def person(v: Cell) -> str | None:
    """A person's name: like :func:`text`, and ``张  三`` (padded for alignment) → ``张三``."""
    s = text(v)
    return None if s is None else _CJK_GAP.sub("", s)


def _code(v: Cell) -> str | None:
    s = text(v)
    return None if s is None else "".join(s.split()).upper()


def form_no(v: Cell) -> str | None:
    """退款单编号: upper-case, no spaces (``tkd 20261103-001`` → ``TKD20261103-001``)."""
    return _code(v)


def order_no(v: Cell) -> str | None:
    """订单号 (TK number): upper-case, no spaces; a number cell without ``.0``."""
    return _code(v)


# --- date-times ------------------------------------------------------------------------------

_DATE = r"(?P<y>\d{4})\s*(?P<sep>[-/.年])\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*[日号]?"
_MERIDIEM = r"(?P<ampm>上午|早上|中午|下午|晚上|凌晨|AM|PM)?"
_TIME = (
    _MERIDIEM + r"\s*(?P<H>\d{1,2})\s*(?:[:时點点])\s*(?P<M>\d{1,2})\s*分?"
    r"(?:\s*:\s*(?P<S>\d{1,2})(?:\.\d+)?|\s*(?P<S2>\d{1,2})\s*秒)?"
)
_FULL = re.compile(
    rf"^{_DATE}(?:\s*T?\s*|\s+){_TIME}\s*{_MERIDIEM.replace('ampm', 'ampm2')}$", re.I
)
_DATE_ONLY = re.compile(rf"^{_DATE}$")
_DATE_HOUR = re.compile(
    rf"^{_DATE}(?:\s*T?\s*){_MERIDIEM}\s*\d{{1,2}}\s*(?:[时點点]|时整|点整|h)?$", re.I
)
_ANY_DATE = re.compile(r"\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}")
_ANY_TIME = re.compile(r"\d{1,2}\s*[:时點点]\s*\d{1,2}")
_TIME_ONLY = re.compile(rf"^{_TIME}$", re.I)
_SHORT_YEAR = re.compile(
    r"^\d{1,2}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,4}\b|^\d{1,2}/\d{1,2}/\d{2}\b"
)


def _ambiguous_dt(what: str, shown: str) -> ValueProblem:
    return ValueProblem(Reason.AMBIGUOUS_DATETIME, f"{what}:“{shown}”,{_DATETIME_FIX}")


def _bad_dt(what: str, shown: str) -> ValueProblem:
    return ValueProblem(Reason.BAD_DATETIME, f"{what}:“{shown}”,{_DATETIME_FIX}")


def _to_minute(v: dt.datetime, shown: str) -> dt.datetime:
    if v.microsecond:
        # Float serials carry noise (14:05:59.9996); round to the second like Excel does.
        v = (v + dt.timedelta(microseconds=500_000)).replace(microsecond=0)
    if not _MIN_YEAR <= v.year <= _MAX_YEAR:
        raise _bad_dt("年份不对", shown)
    return v.replace(second=0, microsecond=0, tzinfo=None)


def _from_serial(v: float, *, date1904: bool) -> dt.datetime:
    shown = _number_text(v)
    if not math.isfinite(v) or v <= 0 or v >= 2_958_466:  # 2958466 = 10000-01-01
        raise _bad_dt("不是日期时间", shown)
    if v.is_integer():
        raise _ambiguous_dt("缺少时分", shown)
    epoch = _EXCEL_EPOCH_1904 if date1904 else _EXCEL_EPOCH_1900
    # Microsecond rounding first: timedelta(days=float) keeps the float's noise.
    return _to_minute(epoch + dt.timedelta(microseconds=round(v * 86_400_000_000)), shown)


def _hour(h: int, ampm: str | None) -> int:
    tag = (ampm or "").upper()
    if tag in ("下午", "晚上", "PM") and h < 12:
        return h + 12
    if tag in ("上午", "早上", "凌晨", "AM") and h == 12:
        return 0
    return h


def _parse_datetime_text(s: str) -> dt.datetime:
    if len(_ANY_DATE.findall(s)) > 1 or len(_ANY_TIME.findall(s)) > 1:
        raise _ambiguous_dt("一个单元格里只能填一个时间", s)
    match = _FULL.match(s)
    if match is None:
        if _DATE_ONLY.match(s):
            raise _ambiguous_dt("缺少时分", s)
        if _DATE_HOUR.match(s):
            raise _ambiguous_dt("缺少分钟", s)
        if _TIME_ONLY.match(s):
            raise _ambiguous_dt("缺少日期", s)
        if _SHORT_YEAR.match(s):
            raise _bad_dt("年份须写4位", s)
        raise _bad_dt("无法识别的日期时间", s)
    if match["ampm"] and match["ampm2"]:
        raise _bad_dt("无法识别的日期时间", s)
    seconds = int(match["S"] or match["S2"] or 0)
    try:
        value = dt.datetime(
            int(match["y"]),
            int(match["m"]),
            int(match["d"]),
            _hour(int(match["H"]), match["ampm"] or match["ampm2"]),
            int(match["M"]),
            seconds,
        )
    except ValueError:
        raise _bad_dt("日期或时间不存在", s) from None
    if int(match["H"]) > 12 and (match["ampm"] or match["ampm2"]):
        raise _bad_dt("上午/下午与小时矛盾", s)
    return _to_minute(value, s)


def datetime_minute(v: Cell, *, date1904: bool = False) -> dt.datetime | None:
    """A date-time to the minute (naive, local time); empty → ``None``.

    ``date1904``: the workbook uses the 1904 date system (only matters for a bare number).
    """
    if v is None or v == "":
        return None
    if isinstance(v, dt.datetime):
        return _to_minute(v, v.isoformat(sep=" "))
    if isinstance(v, dt.date):
        raise _ambiguous_dt("缺少时分", v.isoformat())
    if isinstance(v, dt.time):
        raise _ambiguous_dt("缺少日期", v.strftime("%H:%M"))
    if isinstance(v, dt.timedelta):
        raise _bad_dt("这是一个时长,不是日期时间", str(v))
    if isinstance(v, bool):
        raise _bad_dt("不是日期时间", str(v))
    if isinstance(v, int | float):
        return _from_serial(float(v), date1904=date1904)
    s = text(v)
    if s is None:
        return None
    return _parse_datetime_text(s)


# --- amounts ---------------------------------------------------------------------------------

_CURRENCY = re.compile(r"(?:RMB|CNY|人民币|[¥￥]|元整|元|圆整|圆|块钱|块)", re.I)
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?|\.\d+")
_PLAIN = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)$")
_GROUPED = re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_LIST_SEPARATOR_BETWEEN_DIGITS = re.compile(r"\d\s*[，、;；]\s*\d")
_CENT = Decimal("0.01")
_TOO_MUCH = Decimal("1e10")  # ten billion yuan: a typo, and beyond it quantize() would overflow


def _checked_amount(d: Decimal, shown: str) -> Decimal:
    if not d.is_finite():
        raise ValueProblem(Reason.BAD_AMOUNT, f"金额不是数字:“{shown}”,{_AMOUNT_FIX}")
    if d <= 0:
        raise ValueProblem(Reason.BAD_AMOUNT, f"金额必须大于0:“{shown}”,{_AMOUNT_FIX}")
    if d >= _TOO_MUCH:
        raise ValueProblem(Reason.BAD_AMOUNT, f"金额大得不合理:“{shown}”,{_AMOUNT_FIX}")
    if d != d.quantize(_CENT):
        raise ValueProblem(Reason.BAD_AMOUNT, f"金额最多两位小数(到分):“{shown}”,{_AMOUNT_FIX}")
    return d.quantize(_CENT)


def amount(v: Cell) -> Decimal | None:
    """A refund amount in yuan, > 0, at most two decimals, as ``Decimal('1234.50')``."""
    if v is None or v == "":
        return None
    if isinstance(v, bool | dt.date | dt.time | dt.timedelta):
        raise ValueProblem(Reason.BAD_AMOUNT, f"金额不是数字:“{text(v)}”,{_AMOUNT_FIX}")
    if isinstance(v, int):
        return _checked_amount(Decimal(v), str(v))
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueProblem(Reason.BAD_AMOUNT, f"金额不是数字:“{v}”,{_AMOUNT_FIX}")
        # Computed cells carry binary noise (0.1+0.2 = 0.30000000000000004): six decimals are
        # far below a cent and far above float noise for any plausible refund.
        return _checked_amount(Decimal(repr(round(v, 6))), _number_text(v))
    raw = str(v)
    s = text(v)
    if s is None:
        return None
    if _LIST_SEPARATOR_BETWEEN_DIGITS.search(raw):
        raise ValueProblem(Reason.AMBIGUOUS_AMOUNT, f"一个单元格里有多个金额:“{s}”,{_AMOUNT_FIX}")
    bare = _CURRENCY.sub(" ", s).strip()
    numbers = _NUMBER.findall(bare)
    if len(numbers) > 1 and not re.search(r"[A-Za-z]", bare):
        # "1 234.50" lands here too: space grouping cannot be told apart from "100 200".
        spaced = re.fullmatch(r"\d[\d.,]*\s+[\d.,\s]*\d", bare) is not None
        what = "金额中间有空格" if spaced else "一个单元格里有多个金额"
        raise ValueProblem(Reason.AMBIGUOUS_AMOUNT, f"{what}:“{s}”,{_AMOUNT_FIX}")
    negative = bare.startswith("-") or (bare.startswith("(") and bare.endswith(")"))
    core = bare.strip("()").removeprefix("-").removeprefix("+").strip()
    if _GROUPED.match(core):
        core = core.replace(",", "")
    elif "," in core:
        raise ValueProblem(Reason.AMBIGUOUS_AMOUNT, f"金额的千位分隔不对:“{s}”,{_AMOUNT_FIX}")
    if not _PLAIN.match(core):
        raise ValueProblem(Reason.BAD_AMOUNT, f"金额不是数字:“{s}”,{_AMOUNT_FIX}")
    try:
        d = Decimal(core)
    except InvalidOperation:  # pragma: no cover - _PLAIN guarantees a decimal literal
        raise ValueProblem(Reason.BAD_AMOUNT, f"金额不是数字:“{s}”,{_AMOUNT_FIX}") from None
    return _checked_amount(-d if negative else d, s)


# --- mobile numbers --------------------------------------------------------------------------

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_MOBILE_NOISE = re.compile(r"[\s\-()().]")


def mobile(v: Cell) -> str | None:
    """A mainland mobile number: 11 digits starting 1[3-9]; ``+86``/``0086``/``86`` dropped."""
    if v is None or v == "":
        return None
    if isinstance(v, bool | dt.date | dt.time | dt.timedelta):
        raise ValueProblem(Reason.BAD_MOBILE, f"不是手机号码:“{text(v)}”,{_MOBILE_FIX}")
    s = text(v)
    if s is None:
        return None
    digits = _MOBILE_NOISE.sub("", s)
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            digits = digits[len(prefix) :]
            break
    if not _MOBILE.match(digits):
        several = len(re.findall(r"1[3-9]\d{9}", digits)) > 1
        what = "只能填写一个手机号码" if several else "手机号码不对"
        raise ValueProblem(Reason.BAD_MOBILE, f"{what}:“{s}”,{_MOBILE_FIX}")
    return digits


# --- approval --------------------------------------------------------------------------------


def approval(v: Cell) -> str | None:
    """领导审批: exactly 同意 or 不同意 (spaces and a final full stop are forgiven)."""
    s = text(v)
    if s is None:
        return None
    compact = "".join(s.split()).rstrip("。.!")
    if compact in APPROVAL_CHOICES:
        return compact
    raise ValueProblem(
        Reason.BAD_CHOICE,
        f"领导审批只能填写“同意”或“不同意”:现在是“{s}”,请从下拉列表中选择",
    )
