"""normalize: what people really type (and what calamine hands back) → canonical values."""

from __future__ import annotations

import datetime as dt
import pickle
from collections.abc import Callable
from decimal import Decimal

import pytest

from refundflow import normalize
from refundflow.errors import Reason
from refundflow.normalize import ValueProblem

P = pytest.param
D = dt.datetime(2026, 11, 3, 14, 5)


def problem(fn: Callable[[object], object], value: object) -> ValueProblem:
    with pytest.raises(ValueProblem) as info:
        fn(value)
    return info.value


# --- text ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        P(None, None, id="none"),
        P("", None, id="empty"),
        P("   \u3000 ", None, id="only-spaces"),
        P("  客服部 ", "客服部", id="stripped"),
        P("技术部\u3000 二组", "技术部 二组", id="fullwidth-space-collapsed"),
        P("ＡＢＣ１２３", "ABC123", id="fullwidth-letters-digits"),
        P("原因：（见附件）", "原因:(见附件)", id="fullwidth-punctuation"),
        P(
            "已处理。顾客“满意”、结案",
            "已处理。顾客“满意”、结案",
            id="chinese-punctuation-kept",
        ),
        P("①号窗口", "①号窗口", id="circled-digit-kept-unlike-nfkc"),
        P("a\u200bb\ufeff", "ab", id="zero-width-dropped"),
        P("a\tb\n c", "a b c", id="whitespace-runs"),
        P(13800138000.0, "13800138000", id="integral-float-no-dot-zero"),
        P(1234.5, "1234.5", id="fractional-float"),
        P(42, "42", id="int"),
        P(True, "TRUE", id="bool"),
        P(D, "2026-11-03 14:05", id="datetime"),
        P(dt.date(2026, 11, 3), "2026-11-03", id="date"),
    ],
)
def test_text(value: object, expected: str | None) -> None:
    assert normalize.text(value) == expected


def test_text_multiline_keeps_line_breaks_but_not_blank_lines() -> None:
    raw = "  第一行  说明 \r\n\r\n\n  第二行\u3000\n  "
    assert normalize.text(raw, multiline=True) == "第一行 说明\n第二行"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        P("张三", "张三", id="plain"),
        P("张  三", "张三", id="padded-two-char-name"),
        P("张\u3000三", "张三", id="fullwidth-padding"),
        P(" Li Lei ", "Li Lei", id="latin-name-keeps-space"),
    ],
)
def test_person(value: object, expected: str) -> None:
    assert normalize.person(value) == expected


@pytest.mark.parametrize(
    ("fn", "value", "expected"),
    [
        P(normalize.order_no, " tk 2026 1103 ", "TK20261103", id="order-spaces-upper"),
        P(normalize.order_no, "ＴＫ２０２６", "TK2026", id="order-fullwidth"),
        P(normalize.order_no, 2026110312345.0, "2026110312345", id="order-number-cell"),
        P(normalize.order_no, "", None, id="order-empty"),
        P(normalize.form_no, "tkd20261103-001", "TKD20261103-001", id="form-no-upper"),
        P(normalize.form_no, "TKD 20261103－001", "TKD20261103-001", id="form-no-fullwidth-dash"),
    ],
)
def test_codes(fn: Callable[[object], str | None], value: object, expected: str | None) -> None:
    assert fn(value) == expected


# --- date-times ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        P(None, None, id="none"),
        P("", None, id="empty"),
        P(" \u3000", None, id="blank"),
        P(D, D, id="real-datetime"),
        P(dt.datetime(2026, 11, 3, 14, 5, 37), D, id="real-datetime-seconds-truncated"),
        P(dt.datetime(2026, 11, 3, 14, 5, 59, 999_600), D.replace(minute=6), id="float-noise"),
        P(46329.5868055555, D, id="bare-serial-1900"),
        P(46329.5868055555500007, D, id="gnumeric-serial-digits"),
        P("2026-11-03 14:05", D, id="iso"),
        P("2026-11-03T14:05", D, id="iso-t"),
        P("2026/11/3 14:05", D, id="slashes-no-padding"),
        P("2026-11-03 14:05:00", D, id="zero-seconds"),
        P("2026-11-03 14:05:37", D, id="seconds-truncated"),
        P("2026.11.03 14:05", D, id="dots"),
        P("2026年11月3日 14:05", D, id="chinese-date"),
        P("2026年11月3日14时05分", D, id="chinese-date-time"),
        P("2026年11月3日14时05分30秒", D, id="chinese-with-seconds"),
        P("2026年11月3号 14点05分", D, id="chinese-hao-dian"),
        P("2026年11月3日 下午2点05分", D, id="chinese-afternoon"),
        P("2026-11-03 2:05 PM", D, id="pm-suffix"),
        P("2026-11-03 上午12:30", D.replace(hour=0, minute=30), id="am-twelve"),
        P("２０２６－１１－０３　１４：０５", D, id="fullwidth-digits"),
        P("２０２６年１１月３日１４时０５分", D, id="fullwidth-chinese"),
        P("  2026-11-03   14:05  ", D, id="extra-spaces"),
    ],
)
def test_datetime_accepted(value: object, expected: dt.datetime | None) -> None:
    assert normalize.datetime_minute(value) == expected


def test_bare_serial_in_1904_workbook() -> None:
    assert normalize.datetime_minute(46329.5868055555 - 1462, date1904=True) == D


@pytest.mark.parametrize(
    ("value", "reason", "says"),
    [
        P("2026-11-03", Reason.AMBIGUOUS_DATETIME, "缺少时分", id="date-only-text"),
        P(dt.date(2026, 11, 3), Reason.AMBIGUOUS_DATETIME, "缺少时分", id="date-only-cell"),
        P(46329.0, Reason.AMBIGUOUS_DATETIME, "缺少时分", id="integral-serial"),
        P("2026年11月3日", Reason.AMBIGUOUS_DATETIME, "缺少时分", id="chinese-date-only"),
        P("2026-11-03 14", Reason.AMBIGUOUS_DATETIME, "缺少分钟", id="hour-only"),
        P("2026-11-03 14点", Reason.AMBIGUOUS_DATETIME, "缺少分钟", id="hour-dian"),
        P("2026年11月3日下午2点", Reason.AMBIGUOUS_DATETIME, "缺少分钟", id="afternoon-hour"),
        P("14:05", Reason.AMBIGUOUS_DATETIME, "缺少日期", id="time-only-text"),
        P(dt.time(14, 5), Reason.AMBIGUOUS_DATETIME, "缺少日期", id="time-only-cell"),
        P(
            "2026-11-03 14:05 2026-11-04 09:00",
            Reason.AMBIGUOUS_DATETIME,
            "只能填一个",
            id="two-datetimes",
        ),
        P("2026-11-03 14:05-15:30", Reason.AMBIGUOUS_DATETIME, "只能填一个", id="time-range"),
        P("26-11-03 14:05", Reason.BAD_DATETIME, "4位", id="two-digit-year"),
        P("11/3/26 14:05", Reason.BAD_DATETIME, "4位", id="us-two-digit-year"),
        P("2026-02-30 14:05", Reason.BAD_DATETIME, "不存在", id="feb-30"),
        P("2026-11-03 25:00", Reason.BAD_DATETIME, "不存在", id="hour-25"),
        P("2026-13-03 14:05", Reason.BAD_DATETIME, "不存在", id="month-13"),
        P("1026-11-03 14:05", Reason.BAD_DATETIME, "年份", id="year-typo"),
        P("下午 2026-11-03 14:05", Reason.BAD_DATETIME, "", id="pm-with-24h"),
        P("明天下午", Reason.BAD_DATETIME, "无法识别", id="words"),
        P(13800138000.0, Reason.BAD_DATETIME, "不是日期", id="phone-number-as-serial"),
        P(-3.5, Reason.BAD_DATETIME, "不是日期", id="negative-serial"),
        P(dt.timedelta(hours=3), Reason.BAD_DATETIME, "时长", id="duration-cell"),
        P(True, Reason.BAD_DATETIME, "不是日期", id="bool"),
    ],
)
def test_datetime_rejected(value: object, reason: Reason, says: str) -> None:
    exc = problem(normalize.datetime_minute, value)
    assert exc.reason is reason
    assert says in exc.message
    assert "2026-11-03 14:05" in exc.message  # always says the expected format


# --- amounts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        P(None, None, id="none"),
        P("", None, id="empty"),
        P(1234.5, Decimal("1234.50"), id="number-cell"),
        P(1234, Decimal("1234.00"), id="int"),
        P(0.1 + 0.2, Decimal("0.30"), id="float-noise"),
        P(100.00000000001, Decimal("100.00"), id="computed-noise"),
        P("1234.5", Decimal("1234.50"), id="text"),
        P("1234.500", Decimal("1234.50"), id="trailing-zero-decimals"),
        P("¥1,234.50", Decimal("1234.50"), id="yen-grouped"),
        P("￥1234.5", Decimal("1234.50"), id="fullwidth-yen"),
        P("1234.50元", Decimal("1234.50"), id="yuan-suffix"),
        P("1234元整", Decimal("1234.00"), id="yuan-zheng"),
        P("RMB 1,234.50", Decimal("1234.50"), id="rmb-prefix"),
        P("人民币1234.50元", Decimal("1234.50"), id="renminbi"),
        P("１２３４．５０", Decimal("1234.50"), id="fullwidth-digits"),
        P("1,234,567.89", Decimal("1234567.89"), id="millions"),
        P("100,200", Decimal("100200.00"), id="ascii-comma-is-grouping"),
        P(".5", Decimal("0.50"), id="leading-dot"),
    ],
)
def test_amount_accepted(value: object, expected: Decimal | None) -> None:
    assert normalize.amount(value) == expected


def test_amount_keeps_two_decimals() -> None:
    assert str(normalize.amount("12")) == "12.00"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        P("100/200", Reason.AMBIGUOUS_AMOUNT, id="slash"),
        P("100 200", Reason.AMBIGUOUS_AMOUNT, id="space"),
        P("1 234.50", Reason.AMBIGUOUS_AMOUNT, id="space-grouping-is-ambiguous"),
        P("100元和50元", Reason.AMBIGUOUS_AMOUNT, id="two-with-he"),
        P("100，200", Reason.AMBIGUOUS_AMOUNT, id="fullwidth-comma-is-a-list"),
        P("100、200", Reason.AMBIGUOUS_AMOUNT, id="dunhao"),
        P("100+50", Reason.AMBIGUOUS_AMOUNT, id="sum"),
        P("1,23,4", Reason.AMBIGUOUS_AMOUNT, id="bad-grouping"),
        P("12,34.5", Reason.AMBIGUOUS_AMOUNT, id="indian-grouping"),
        P("1234.567", Reason.BAD_AMOUNT, id="three-decimals"),
        P(1234.567, Reason.BAD_AMOUNT, id="three-decimals-number"),
        P("0", Reason.BAD_AMOUNT, id="zero"),
        P(0.0, Reason.BAD_AMOUNT, id="zero-number"),
        P("-50", Reason.BAD_AMOUNT, id="negative"),
        P(-50.0, Reason.BAD_AMOUNT, id="negative-number"),
        P("(50)", Reason.BAD_AMOUNT, id="accounting-negative"),
        P("约100元", Reason.BAD_AMOUNT, id="approximately"),
        P("壹佰元整", Reason.BAD_AMOUNT, id="chinese-capital-numerals"),
        P("abc", Reason.BAD_AMOUNT, id="letters"),
        P("1e3", Reason.BAD_AMOUNT, id="scientific"),
        P("1.234,50", Reason.AMBIGUOUS_AMOUNT, id="european-grouping"),
        P("9" * 40, Reason.BAD_AMOUNT, id="absurd"),
        P(True, Reason.BAD_AMOUNT, id="bool"),
        P(D, Reason.BAD_AMOUNT, id="datetime"),
        P(float("nan"), Reason.BAD_AMOUNT, id="nan"),
    ],
)
def test_amount_rejected(value: object, reason: Reason) -> None:
    exc = problem(normalize.amount, value)
    assert exc.reason is reason
    assert "1234.50" in exc.message


# --- mobile numbers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        P(None, None, id="none"),
        P("", None, id="empty"),
        P("13800138000", "13800138000", id="plain"),
        P(13800138000.0, "13800138000", id="number-cell"),
        P("138 0013 8000", "13800138000", id="spaced"),
        P("138-0013-8000", "13800138000", id="dashed"),
        P("+86 13800138000", "13800138000", id="plus-86"),
        P("+86-138-0013-8000", "13800138000", id="plus-86-dashed"),
        P("8613800138000", "13800138000", id="86-prefix"),
        P("008613800138000", "13800138000", id="0086-prefix"),
        P("１３８００１３８０００", "13800138000", id="fullwidth-digits"),
        P("１３８\u3000００１３\u3000８０００", "13800138000", id="fullwidth-spaced"),
        P("19912345678", "19912345678", id="199"),
    ],
)
def test_mobile_accepted(value: object, expected: str | None) -> None:
    assert normalize.mobile(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        P("1380013800", id="ten-digits"),
        P("138001380001", id="twelve-digits"),
        P("12800138000", id="second-digit-2"),
        P("23800138000", id="not-starting-1"),
        P("010-12345678", id="landline"),
        P("13800138000/13900139000", id="two-numbers"),
        P("138OO138000", id="letter-o"),
        P(True, id="bool"),
    ],
)
def test_mobile_rejected(value: object) -> None:
    exc = problem(normalize.mobile, value)
    assert exc.reason is Reason.BAD_MOBILE
    assert "11位数字,以1开头" in exc.message


# --- approval --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        P(None, None, id="none"),
        P("", None, id="empty"),
        P("同意", "同意", id="approve"),
        P("不同意", "不同意", id="reject"),
        P(" 同意 ", "同意", id="padded"),
        P("\u3000同意\u3000", "同意", id="fullwidth-padded"),
        P("不 同意", "不同意", id="inner-space"),
        P("同意。", "同意", id="full-stop"),
    ],
)
def test_approval_accepted(value: object, expected: str | None) -> None:
    assert normalize.approval(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        P("可以", id="synonym"),
        P("同意,但需核实", id="with-remark"),
        P("OK", id="english"),
        P(1.0, id="number"),
        P(True, id="bool"),
    ],
)
def test_approval_rejected(value: object) -> None:
    exc = problem(normalize.approval, value)
    assert exc.reason is Reason.BAD_CHOICE
    assert "同意" in exc.message


def test_value_problem_survives_pickling() -> None:
    exc = problem(normalize.amount, "100/200")
    again = pickle.loads(pickle.dumps(exc))
    assert (again.reason, again.message) == (exc.reason, exc.message)
