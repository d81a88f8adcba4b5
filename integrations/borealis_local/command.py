"""How every `borealis` command ends, whichever entry point parsed it (`borealis`, or
`python -m borealis_local.bench.cli`): a borealis error is one line on stderr and exit
status 1, Ctrl-C is 130, a closed pipe is quiet."""

from __future__ import annotations

import argparse
import os
import sys

from borealis_local.errors import BorealisError


def run(args: argparse.Namespace) -> int:
    """Run a parsed command (`args.func`) and return its exit status."""
    if getattr(args, "verbose", False):
        from borealis_local.runtime import llama_log

        llama_log.set_verbose(True)
    try:
        return args.func(args)
    except BorealisError as error:
        print(f"borealis: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`borealis list | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
