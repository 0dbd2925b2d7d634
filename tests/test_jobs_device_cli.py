"""Job token semantics, device choice, and the CLI's error handling."""

from __future__ import annotations

import threading

import pytest

from reviewer import cli
from reviewer.device import describe_device, get_device, set_device_override
from reviewer.jobs import Cancelled, JobToken, run_with_progress_bar


def _count(n, token=None):
    for i in range(n):
        token.progress(i + 1, n, f"item {i}")
    return n


def test_token_reports_progress_and_final_step():
    seen = []
    tok = JobToken(seen.append, min_interval_s=10.0)  # rate limit: only the first and the final step pass
    assert _count(50, token=tok) == 50
    assert seen[-1].done == 50 and seen[-1].total == 50
    assert len(seen) <= 3


def test_cancel_from_another_thread_stops_job():
    tok = JobToken()
    started = threading.Event()

    def job(token=None):
        started.set()
        while True:
            token.progress(0, None)

    result = {}

    def runner():
        try:
            job(token=tok)
        except Cancelled:
            result["cancelled"] = True

    t = threading.Thread(target=runner)
    t.start()
    started.wait(5)
    tok.cancel()
    t.join(5)
    assert result == {"cancelled": True}


def test_sub_token_maps_range():
    seen = []
    tok = JobToken(seen.append, min_interval_s=0.0)
    sub = tok.sub(50, 100, 100)
    sub.progress(1, 2)
    assert seen[-1].done == pytest.approx(75)
    tok.cancel()
    with pytest.raises(Cancelled):
        sub.check()


def test_run_with_progress_bar_returns_result():
    assert run_with_progress_bar(_count, 10, label="t") == 10


def test_device_defaults_to_cpu_here_and_override():
    set_device_override(None)
    dev = get_device()
    assert dev.type in ("cpu", "cuda", "mps")
    assert describe_device()
    set_device_override("cpu")
    try:
        assert get_device().type == "cpu"
        assert describe_device().startswith("CPU")
    finally:
        set_device_override(None)


def test_unavailable_cuda_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    set_device_override("cuda")
    try:
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            get_device()
    finally:
        set_device_override(None)


def test_cli_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("info", "convert", "demo", "bench"):
        assert cmd in out


def test_cli_missing_path_is_nonzero_with_message(tmp_path, capsys):
    missing = tmp_path / "nope"
    rc = cli.main(["info", str(missing)])
    assert rc != 0
    assert "nope" in capsys.readouterr().err
