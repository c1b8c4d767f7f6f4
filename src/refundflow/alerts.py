"""Tell a site about each new breach through its own command (``alert_command``).

The command gets the form and the breach as arguments and as environment variables, so a
site can send it to e-mail or chat with a small script. It runs once per breach: the ledger
marks the breach alerted after the command was run, whatever its result. A failing, missing
or hanging command is logged and never stops the watcher.
"""

from __future__ import annotations

import logging
import os
import subprocess

from .breaches import BREACH_NAMES, BreachKind, describe
from .config import ROLE_NAMES, Config
from .ledger import BreachRow

log = logging.getLogger(__name__)


def alert_environment(breach: BreachRow, config: Config) -> dict[str, str]:
    kind = BreachKind(breach.kind)
    return {
        "REFUNDFLOW_FORM_NO": breach.form_no,
        "REFUNDFLOW_BREACH": breach.kind,
        "REFUNDFLOW_BREACH_NAME": BREACH_NAMES[kind],
        "REFUNDFLOW_DUE": f"{breach.due:%Y-%m-%d %H:%M}",
        "REFUNDFLOW_WAITED_ON": breach.waited_on or "",
        "REFUNDFLOW_WAITED_ON_NAME": ROLE_NAMES.get(breach.waited_on or "", ""),
        "REFUNDFLOW_STEP": breach.step,
        "REFUNDFLOW_MESSAGE": f"退款单 {breach.form_no} {describe(breach, config)}",
    }


def run_alert(breach: BreachRow, config: Config) -> bool:
    """Run the configured command for one breach; whether it ran and exited 0."""
    command = config.alert_command
    if not command:
        return True
    env = alert_environment(breach, config)
    argv = [*command, breach.form_no, breach.kind, env["REFUNDFLOW_DUE"], breach.waited_on or ""]
    try:
        done = subprocess.run(  # the site's own configured command, no shell
            argv,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=config.alert_timeout_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        log.error(
            "alert_command(%s %s)未在 %g 秒内结束,已终止",
            breach.form_no,
            breach.kind,
            config.alert_timeout_seconds,
        )
        return False
    except OSError as exc:
        log.error("alert_command %s 无法运行:%s", command[0], exc)
        return False
    if done.returncode != 0:
        log.error(
            "alert_command(%s %s)退出码 %s:%s",
            breach.form_no,
            breach.kind,
            done.returncode,
            done.stderr.decode("utf-8", "replace").strip()[-500:],
        )
        return False
    return True
