"""A configuration in a process of its own: the parent's side and the child's.

The child is spawned (no memory shared or inherited), so a row's memory is that
configuration's alone. It sends tagged messages down a pipe: ("row", ResultRow) as each
test is measured, ("step", text) for the progress display, then ("done", None) or
("error", error) with the BorealisError itself (every one pickles whole, fields
included; any other exception arrives as a BackendError naming it).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable

from borealis_local.bench.measure import Config
from borealis_local.bench.row import ResultRow
from borealis_local.errors import BackendError, BorealisError


def run_config(
    config: Config,
    on_row: Callable[[ResultRow], None],
    *,
    timeout: float | None = None,
    on_step: Callable[[str], None] | None = None,
) -> None:
    """Run `config` in a fresh process, handing each row to `on_row` as it is measured.
    An error in the child is raised here as the same borealis error; a crash (signal,
    out of memory) as BackendError."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child_main, args=(config, sender), daemon=True)
    process.start()
    sender.close()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            tag, payload = _receive(receiver, process, deadline, config)
            if tag == "row":
                on_row(payload)
            elif tag == "step" and on_step is not None:
                on_step(payload)
            elif tag == "error":
                raise payload  # a BorealisError, pickled whole by the child
            elif tag == "done":
                break
    finally:
        receiver.close()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()


def _receive(receiver, process, deadline: float | None, config: Config):
    while not receiver.poll(0.2):
        if deadline is not None and time.monotonic() > deadline:
            process.kill()
            raise BackendError(
                f"benchmarking {config.target.name} took longer than the time allowed; "
                "use smaller -p/-n/-r or a longer timeout"
            )
        if not process.is_alive() and not receiver.poll(0):
            raise _crash(process.exitcode, config)
    try:
        return receiver.recv()
    except EOFError:
        process.join(timeout=10)
        raise _crash(process.exitcode, config) from None


def _crash(exitcode: int | None, config: Config) -> BackendError:
    why = f"exit status {exitcode}"
    if exitcode is not None and exitcode < 0:
        why = f"signal {-exitcode}"
        if -exitcode == 9:
            why += ", most likely the out-of-memory killer: try a smaller model or context"
        elif -exitcode == 4:
            why += " (SIGILL: this llama.cpp build uses an instruction the CPU lacks; "
            why += "rebuild it with the flags in .ci/cpu-flags.sh)"
    return BackendError(f"the benchmark process for {config.target.name} died ({why})")


def _child_main(config: Config, sender) -> None:
    def send_row(row: ResultRow) -> None:
        sender.send(("row", row))

    def step(text: str) -> None:
        sender.send(("step", text))

    try:
        # Imported here: the parent needs neither, and an import error is reported too.
        if config.target.in_process:
            from borealis_local.bench.llama_bench import LlamaCppRun as Run
        else:
            from borealis_local.bench.serving import ServerRun as Run
        Run(config, send_row, step).run()
    except BorealisError as error:
        sender.send(("error", error))
    except Exception as error:  # reported, not swallowed: the parent raises it
        sender.send(("error", BackendError(f"{type(error).__name__}: {error}")))
    else:
        sender.send(("done", None))
    finally:
        sender.close()


__all__ = ["run_config"]
