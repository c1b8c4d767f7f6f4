import re
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

from refundflow.config import (
    DEFAULT_CONFIG_TEXT,
    ROLE_KEYS,
    Config,
    load_config,
    parse_config,
)
from refundflow.errors import ConfigError, Reason


def test_default_config_text_parses_to_the_defaults() -> None:
    config = parse_config(tomllib.loads(DEFAULT_CONFIG_TEXT))
    assert config.limits == Config().limits
    assert config.president_threshold == Decimal("10000")
    assert config.folders["tech"] == "tech"


def test_incomplete_seconds_defaults_to_a_minute_and_is_read(tmp_path: Path) -> None:
    assert load_config(tmp_path).incomplete_seconds == 60.0
    (tmp_path / "refundflow.toml").write_text("[watch]\nincomplete_seconds = 5\n", "utf-8")
    assert load_config(tmp_path).incomplete_seconds == 5.0


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path).banks == Config().banks


def test_roster_and_threshold_are_read(tmp_path: Path) -> None:
    (tmp_path / "refundflow.toml").write_text(
        'president_threshold = 5000\n[roster]\ntech = ["王五"]\ncs = []\n', encoding="utf-8"
    )
    config = load_config(tmp_path)
    assert config.president_threshold == Decimal("5000")
    assert config.in_roster("tech", "王五")
    assert not config.in_roster("tech", "张三")
    assert config.in_roster("cs", "任何人")  # an empty list accepts anyone


def test_default_config_offers_every_role_and_the_refusal_option_commented_out() -> None:
    config = parse_config(tomllib.loads(DEFAULT_CONFIG_TEXT))
    assert config.open_roles() == ROLE_KEYS, "a new workspace checks nobody until filled in"
    assert config.require_roster is False, "the default warns; refusing is the site's choice"
    filled = DEFAULT_CONFIG_TEXT.replace("# require_roster = false", "require_roster = true")
    for role in ROLE_KEYS:
        assert f"\n# {role} = [" in filled, role
        filled = filled.replace(f"\n# {role} = [", f"\n{role} = [")
    config = parse_config(tomllib.loads(filled))
    assert config.open_roles() == ()
    assert config.require_roster is True
    assert "值班负责人" in DEFAULT_CONFIG_TEXT, "the duty lead is said to belong to cs"


def test_every_commented_example_of_the_default_config_works_once_uncommented() -> None:
    # A top-level key written after a [table] header would belong to that table.
    text = re.sub(r"(?m)^# (?=\"?\w+\"? = )", "", DEFAULT_CONFIG_TEXT)
    config = parse_config(tomllib.loads(text))
    assert config.president_threshold == Decimal("10000")
    assert config.form_no_prefix == "TKD"
    assert config.banks == ("中国工商银行", "中国建设银行", "招商银行")
    assert config.ledger == "refundsheets/ledger.sqlite3"
    assert [s.name for s in config.shifts] == ["白班", "中班"]
    assert config.folders["cs"] == "客服部"


def test_demo_workspace_config_is_what_init_writes() -> None:
    repo = Path(__file__).resolve().parents[1]
    assert (repo / "refundflow.toml").read_text(encoding="utf-8") == DEFAULT_CONFIG_TEXT


def test_open_roles_are_those_without_names() -> None:
    config = parse_config({"roster": {"tech": ["王五"], "cashier": []}})
    assert config.open_roles() == ("cs", "cashier", "accountant", "director", "president", "admin")
    assert config.has_roster("tech") and not config.has_roster("cashier")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        pytest.param("[limits]\nfill_minutes = -1\n", "limits.fill_minutes", id="negative-limit"),
        pytest.param("[limits]\nfill_minute = 10\n", "limits.fill_minute", id="unknown-limit"),
        pytest.param('[roster]\nboss = ["x"]\n', "roster.boss", id="unknown-role"),
        pytest.param('[roster]\ntech = "王五"\n', "roster.tech", id="roster-not-a-list"),
        pytest.param('[roster]\ncs_lead = ["x"]\n', "roster.cs_lead", id="duty-lead-list"),
        pytest.param('require_roster = "yes"\n', "require_roster", id="require-not-bool"),
        pytest.param("banks = []\n", "banks", id="empty-banks"),
        pytest.param('president_threshold = "lots"\n', "president_threshold", id="bad-threshold"),
        pytest.param('[shifts]\n"白班" = "8-17"\n', "shifts.白班", id="bad-shift"),
        pytest.param('[calendar]\nholidays = ["soon"]\n', "calendar.holidays", id="bad-date"),
        pytest.param('[folders]\ntech = "cs"\n', "folders", id="folders-collide"),
        pytest.param("colour = 1\n", "colour", id="unknown-key"),
        pytest.param(
            "[watch]\nstable_seconds = -0.5\n", "watch.stable_seconds", id="negative-delay"
        ),
        pytest.param(
            "[watch]\nstable_seconds = inf\n", "watch.stable_seconds", id="infinite-delay"
        ),
        pytest.param("[watch]\nrescan_seconds = nan\n", "watch.rescan_seconds", id="nan-rescan"),
        pytest.param(
            "[watch]\nincomplete_seconds = -1\n", "watch.incomplete_seconds", id="negative-wait"
        ),
        pytest.param("[limits\n", "refundflow.toml", id="not-toml"),
        pytest.param("alert_command = []\n", "alert_command", id="empty-alert-command"),
        pytest.param("alert_command = [1]\n", "alert_command", id="alert-command-not-text"),
        pytest.param('alert_command = "\'open"\n', "alert_command", id="alert-command-quote"),
        pytest.param(
            "alert_timeout_seconds = 0\n", "alert_timeout_seconds", id="alert-timeout-zero"
        ),
        pytest.param("[handover]\nauto = 1\n", "handover.auto", id="handover-auto-not-bool"),
        pytest.param(
            "[handover]\nbefore_end_minutes = 0\n",
            "handover.before_end_minutes",
            id="handover-lead-zero",
        ),
        pytest.param("[handover]\nwhen = 1\n", "handover.when", id="handover-unknown"),
    ],
)
def test_bad_configuration_is_refused_naming_file_and_key(
    tmp_path: Path, text: str, key: str
) -> None:
    (tmp_path / "refundflow.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.reason is Reason.CONFIG_INVALID
    assert str(tmp_path / "refundflow.toml") in info.value.message
    assert key in info.value.message


def test_duty_lead_list_is_refused_pointing_at_the_cs_roster(tmp_path: Path) -> None:
    (tmp_path / "refundflow.toml").write_text('[roster]\ncs_lead = ["王主管"]\n', "utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert "值班负责人属于客服部,请把姓名写在 cs 名单中" in info.value.message


@pytest.mark.parametrize(
    ("value", "argv"),
    [
        pytest.param(
            "\"/opt/refund/notify.sh --to '客服 群'\"",
            ("/opt/refund/notify.sh", "--to", "客服 群"),
            id="string-split-like-a-shell",
        ),
        pytest.param('["python3", "notify.py"]', ("python3", "notify.py"), id="list"),
    ],
)
def test_alert_command_is_a_list_of_arguments(value: str, argv: tuple[str, ...]) -> None:
    config = parse_config(tomllib.loads(f"alert_command = {value}\n"))
    assert config.alert_command == argv


def test_report_keys_are_read(tmp_path: Path) -> None:
    (tmp_path / "refundflow.toml").write_text(
        '[report]\nfinance_compiler = "accountant"\nmask_mobile = false\n'
        "due_over_holidays = false\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path)
    assert config.report_finance_compiler == "accountant"
    assert config.report_mask_mobile is False
    assert config.report_due_over_holidays is False
    assert Config().report_mask_mobile and Config().report_due_over_holidays


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            'finance_compiler = "tech"',
            "report.finance_compiler 应为财务部的角色之一(cashier、accountant、director),"
            "现在是 'tech'",
            id="not-finance",
        ),
        pytest.param(
            'mask_mobile = "yes"', "report.mask_mobile 应为 true 或 false,现在是 'yes'", id="bool"
        ),
        pytest.param("compiler = 1", "report.compiler 是未知的统计报表配置项", id="unknown"),
    ],
)
def test_bad_report_keys_are_refused(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "refundflow.toml").write_text(f"[report]\n{text}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert message in info.value.message
