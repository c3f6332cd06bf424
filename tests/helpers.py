"""Test helpers shared by several test files."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
"""The tests folder: its subfolders mirror src/fervid (tests/stage1/ tests stage1/, ...)."""
REPO = TESTS.parent
FIXTURES = TESTS / "fixtures"
"""Files made once on another machine (the legacy model files and feature store)."""
DISTRIBUTED = TESTS / "distributed"
"""Scripts that the distributed tests run under torchrun."""
SHARED_DATA = REPO.parent / "shared" / "data"
"""Real media beside the checkout (../shared/data); tests that need it skip without it."""

CROSS_CPU_RTOL = 1e-6
"""Tolerance for float32 network outputs compared with values another machine computed (the
files of tests/fixtures): another CPU's vectorised kernels add in another order, which moves
float32 results by a few units in the last place (about 1e-8 at these magnitudes); 1e-6 of the
array's scale is far above that and far below any real change. Two runs on one machine (a
resume, a seed) are still compared bit for bit."""

STORED_F1_ABS = 1e-9
"""Tolerance for an F1 score stored by another machine: F1 is a ratio of frame counts, the same
on any CPU once the predicted classes are (a class flipped by rounding would move it by far
more); the stored files round it to 10 digits."""


def assert_close_across_cpus(actual, expected, rtol: float = CROSS_CPU_RTOL) -> None:
    """``actual`` (computed here) equals ``expected`` (computed on another machine) within
    ``rtol`` of the largest ``|expected|``: float32 rounding scales with the magnitude of the
    values summed, not with each output, so a near-zero output gets the same absolute slack."""
    import numpy as np

    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def kill_after_first_checkpoint(run: Path, cli_args: list[str], timeout: float = 180) -> None:
    """Start ``fervid <cli_args>`` and SIGKILL it as soon as its first checkpoint exists;
    assert it was killed before it finished (no final model yet)."""
    process = subprocess.Popen([sys.executable, "-m", "fervid", "-q", *cli_args])
    deadline = time.monotonic() + timeout
    while not (run / "checkpoints" / "last.pt").exists() and process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run / "model.safetensors").exists(), "the run finished before it could be killed"


def torchrun(
    processes: int, *args: str, target: tuple[str, ...] = ("-m", "fervid", "-q")
) -> subprocess.CompletedProcess:
    """Run ``target *args`` under torchrun with ``processes`` CPU processes (gloo) on a free
    port; the caller checks the return code and reads stderr."""
    command = torchrun_command(processes, *args, target=target)
    return subprocess.run(command, timeout=300, capture_output=True, text=True)


def max_weight_difference(first: Path, second: Path) -> float:
    """The largest absolute difference between two model.safetensors files' tensors (0.0 when
    bit-identical); asserts they hold the same tensor names."""
    import torch

    from fervid.runtime.checkpoint import load_weights

    a, _ = load_weights(first)
    b, _ = load_weights(second)
    assert a.keys() == b.keys()
    worst = 0.0
    for key in a:
        if not torch.equal(a[key], b[key]):
            worst = max(worst, (a[key].double() - b[key].double()).abs().max().item(), 1e-300)
    return worst


def torchrun_command(
    processes: int, *args: str, target: tuple[str, ...] = ("-m", "fervid", "-q")
) -> list[str]:
    """The command line ``torchrun`` runs (CPU processes, gloo, a free port)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={processes}",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=127.0.0.1:0",
        *target,
        *args,
    ]


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...), read from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def is_gone(pid: int) -> bool:
    """True when ``pid`` has exited (no such process, or a zombie nobody has reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def torchrun_kill_after_first_checkpoint(
    run: Path, processes: int, cli_args: list[str], timeout: float = 240
) -> None:
    """``kill_after_first_checkpoint`` under torchrun: start ``fervid <cli_args>`` with
    ``processes`` CPU processes and, as soon as the run's first checkpoint exists, SIGKILL the
    launcher and every worker at once (torchrun starts each worker in a session of its own, so
    they are found by parent, not by process group); wait until all are gone and assert the run
    was killed before it finished."""
    import tempfile

    with tempfile.TemporaryFile() as log:
        command = torchrun_command(processes, *cli_args)
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not (run / "checkpoints" / "last.pt").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                victims = kill_all([*descendants(process.pid), process.pid])
                process.wait()
                log.seek(0)
                raise AssertionError("no checkpoint appeared: " + log.read().decode()[-3000:])
            time.sleep(0.01)
        workers = descendants(process.pid)
        victims = kill_all([*workers, process.pid])
        process.wait()
        while not all(is_gone(pid) for pid in victims):
            assert time.monotonic() < deadline + 30, "a killed worker is still running"
            time.sleep(0.01)
    assert len(workers) >= processes, f"found {len(workers)} workers to kill, not {processes}"
    assert not (run / "model.safetensors").exists(), "the run finished before it could be killed"


def kill_all(pids: list[int]) -> list[int]:
    """SIGKILL every process of ``pids`` (those already gone are skipped); returns ``pids``."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids
