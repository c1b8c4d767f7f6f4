"""ParserPool: parsers crash, abort, panic and hang in a worker, never in the watcher."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from refundflow.errors import FileRejected, Reason
from refundflow.sandbox import ParserFailed, ParserPool, probe_workbook

from corpus import CORPUS

log = logging.getLogger(__name__)

ABORTS = ["phpspreadsheet__oleloop.xls", "edr__Test_git_issue_382_oom.xls"]


# --- functions the worker runs (top level, so they pickle by reference) ---------------------------


def echo(value: object) -> object:
    return value


def nap(seconds: float) -> str:
    time.sleep(seconds)
    return "awake"


def refuse(reason: str) -> None:
    raise FileRejected("文件已加密(设有打开密码)", reason=Reason(reason), hint="请取消密码")


def fail_with(kind: str) -> None:
    if kind == "value":
        raise ValueError("bad cell")
    if kind == "memory":
        raise MemoryError
    if kind == "base":
        raise Strange("not an Exception")
    if kind == "exit":
        raise SystemExit(3)
    if kind == "abort":
        os.abort()
    raise AssertionError(kind)


class Strange(BaseException):
    """Like pyo3's PanicException: derives from BaseException, not Exception."""


def unpicklable() -> object:
    return threading.Lock()


def worker_pid() -> int:
    return os.getpid()


# --- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool() -> Iterator[ParserPool]:
    with ParserPool(memory_mb=1024, timeout=20) as p:
        yield p


def descendants_in_state(state: str) -> list[int]:
    """PIDs of our descendants (worker, forkserver, ...) whose /proc state is ``state``."""
    parents: dict[int, int] = {}
    states: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        pid = int(stat.parent.name)
        states[pid], parents[pid] = fields[0], int(fields[1])
    ours = {os.getpid()}
    changed = True
    while changed:
        new = {pid for pid, ppid in parents.items() if ppid in ours} - ours
        changed = bool(new)
        ours |= new
    return [pid for pid in ours if states.get(pid) == state]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


# --- tests ----------------------------------------------------------------------------------------


def test_round_trips_answer_each_call_in_order(pool: ParserPool) -> None:
    # The overhead of a call is measured by bench/bench_sandbox.py, not here.
    assert pool.run(echo, {"金额": 128.5}) == {"金额": 128.5}
    assert [pool.run(echo, i) for i in range(2000)] == list(range(2000))
    assert pool.restarts == 0


def test_refundflow_error_comes_back_as_itself(pool: ParserPool) -> None:
    pid = pool.run(worker_pid)
    with pytest.raises(FileRejected) as info:
        pool.run(refuse, "encrypted")
    assert type(info.value) is FileRejected
    assert info.value.reason is Reason.ENCRYPTED
    assert info.value.message == "文件已加密(设有打开密码)"
    assert info.value.hint == "请取消密码"
    assert pool.run(worker_pid) == pid  # an expected refusal does not cost a worker


@pytest.mark.parametrize(
    ("kind", "type_name", "replaced"),
    [
        pytest.param("value", "ValueError", False, id="exception-keeps-worker"),
        pytest.param("memory", "MemoryError", True, id="memory-error-recycles"),
        pytest.param("base", "Strange", True, id="base-exception-recycles"),
    ],
)
def test_other_errors_become_parser_crashed(
    pool: ParserPool, kind: str, type_name: str, replaced: bool
) -> None:
    pid = pool.run(worker_pid)
    with pytest.raises(ParserFailed) as info:
        pool.run(fail_with, kind)
    assert info.value.reason is Reason.PARSER_CRASHED
    assert info.value.message == "文件无法解析,可能已损坏"
    assert info.value.detail.startswith(type_name)
    assert (pool.run(worker_pid) != pid) is replaced


@pytest.mark.parametrize("kind", ["exit", "abort"])
def test_worker_death_is_a_crash_and_the_next_call_works(pool: ParserPool, kind: str) -> None:
    before = pool.restarts
    with pytest.raises(ParserFailed) as info:
        pool.run(fail_with, kind)
    assert info.value.reason is Reason.PARSER_CRASHED
    assert "died" in info.value.detail
    assert pool.run(echo, 1) == 1
    assert pool.restarts == before + 1


def test_worker_killed_between_calls_is_replaced_silently(pool: ParserPool) -> None:
    pid = pool.run(worker_pid)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:  # e.g. the OOM killer, while idle
        time.sleep(0.01)
    assert pool.run(echo, "next") == "next"
    assert pool.run(worker_pid) != pid


def test_unpicklable_result(pool: ParserPool) -> None:
    with pytest.raises(ParserFailed) as info:
        pool.run(unpicklable)
    assert "cannot send" in info.value.detail
    assert pool.run(echo, 2) == 2


def test_timeout_kills_and_restarts() -> None:
    # Only the 30 s nap is meant to time out: the calls around it get a timeout no busy
    # machine misses (a 0.5 s one failed the first call under load, before any nap).
    with ParserPool(memory_mb=256, timeout=30) as short:
        pid = short.run(worker_pid)
        short.timeout = 0.5
        start = time.monotonic()
        with pytest.raises(ParserFailed) as info:
            short.run(nap, 30)
        assert time.monotonic() - start < 15, "waited for the nap instead of the timeout"
        assert info.value.reason is Reason.PARSER_TIMEOUT
        assert not alive(pid)
        short.timeout = 30
        assert short.run(nap, 0) == "awake"


def test_concurrent_callers(pool: ParserPool) -> None:
    results: dict[int, object] = {}

    def call(i: int) -> None:
        results[i] = pool.run(echo, i)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: i for i in range(8)}


def test_close_leaves_no_process_behind() -> None:
    with ParserPool(memory_mb=256, timeout=5) as p:
        pid = p.run(worker_pid)
        with pytest.raises(ParserFailed):
            p.run(fail_with, "abort")
        second = p.run(worker_pid)
    assert not alive(pid)
    assert not alive(second)
    assert descendants_in_state("Z") == []
    with pytest.raises(RuntimeError):
        p.run(echo, 1)


@pytest.mark.corpus
def test_panic_exception_is_contained(pool: ParserPool) -> None:
    with pytest.raises(ParserFailed) as info:
        pool.run(probe_workbook, (CORPUS / "poi__Simple.xlsb").read_bytes())
    assert info.value.reason is Reason.PARSER_CRASHED
    assert info.value.detail.startswith("PanicException")
    assert pool.run(probe_workbook, (CORPUS / "sheetjs__Attendance.xlsx").read_bytes()) == 1


@pytest.mark.corpus
@pytest.mark.parametrize("name", ABORTS)
def test_8gib_allocation_abort_is_contained(pool: ParserPool, name: str) -> None:
    with pytest.raises(ParserFailed) as info:
        pool.run(probe_workbook, (CORPUS / name).read_bytes())
    assert info.value.reason is Reason.PARSER_CRASHED
    assert "SIGABRT" in info.value.detail
    assert pool.run(probe_workbook, (CORPUS / "sheetjs__Attendance.xlsx").read_bytes()) == 1


@pytest.mark.corpus
def test_every_corpus_file_through_the_pool() -> None:
    files = sorted(p for p in CORPUS.iterdir() if p.name not in ("MANIFEST.tsv", "SOURCES.md"))
    start = time.monotonic()
    outcomes: dict[str, int | Reason] = {}
    with ParserPool(memory_mb=1024, timeout=15) as p:
        for path in files:
            try:
                outcomes[path.name] = p.run(probe_workbook, path.read_bytes())
            except FileRejected as exc:
                outcomes[path.name] = exc.reason
        restarts = p.restarts
        assert p.run(echo, "still here") == "still here"
    elapsed = time.monotonic() - start
    crashed = [n for n, o in outcomes.items() if o is Reason.PARSER_CRASHED]
    log.info(
        "%d files in %.1f s, %d refused, %d worker restarts",
        len(files),
        elapsed,
        len(crashed),
        restarts,
    )
    assert len(outcomes) == len(files)
    assert all(
        isinstance(o, int) or o in (Reason.PARSER_CRASHED, Reason.PARSER_TIMEOUT)
        for o in outcomes.values()
    )
    assert outcomes["sheetjs__Attendance.xlsx"] == 1
    for name in ABORTS:
        assert outcomes[name] is Reason.PARSER_CRASHED
    assert descendants_in_state("Z") == []


def test_a_worker_that_cannot_start_is_a_tool_failure_not_a_bad_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from refundflow import sandbox
    from refundflow.errors import FileRejected
    from refundflow.sandbox import SandboxUnavailable

    monkeypatch.setattr(sandbox, "_STARTUP_SECONDS", 0.0)  # the ready message never arrives in time
    with ParserPool(memory_mb=256, timeout=5) as pool, pytest.raises(SandboxUnavailable) as info:
        pool.run(len, b"abc")
    assert not isinstance(info.value, FileRejected)
    assert "仍留在 inbox 中" in info.value.message


def test_started_worker_serves_the_first_call_without_a_restart() -> None:
    with ParserPool(memory_mb=512, timeout=20) as pool:
        pool.start()
        started = pool.worker_pid
        assert started is not None
        template = Path(__file__).resolve().parents[1] / "templates" / "退款申请表.xlsx"
        assert pool.run(probe_workbook, template.read_bytes()) >= 1
        assert pool.worker_pid == started and pool.restarts == 0
