"""llama.cpp's own log lines, kept in memory instead of printed on the user's terminal.

llama.cpp logs through one process-wide callback. llama-cpp-python's prints some lines
even with `verbose=False` (for instance `llama_kv_cache_iswa: using full-size SWA
cache …` under every answer), so we install ours: it keeps the last lines, prints
them only when asked (`set_verbose(True)`, `borealis chat --verbose`), and hands them
to error messages (`recent()`) and to the bench, which reads buffer sizes from them
(`mark()`, `text_since()`). Only public llama-cpp-python calls: `llama_log_set` and
`llama_log_callback`.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections import deque

_KEPT = 20_000  # lines; a model load logs a few hundred
_lines: deque[tuple[int, str]] = deque(maxlen=_KEPT)
_count = 0
_lock = threading.Lock()
_verbose = False
_callback = None  # ctypes must keep it alive as long as llama.cpp may call it


def install() -> None:
    """Route llama.cpp's log here (idempotent). Imports llama_cpp, which installs its
    own callback on import: ours replaces it."""
    global _callback
    import llama_cpp

    with _lock:
        if _callback is not None:
            return

        @llama_cpp.llama_log_callback
        def callback(level, text, user_data):
            _keep(text.decode("utf-8", errors="replace"))

        _callback = callback
        llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


def install_mtmd() -> None:
    """Route libmtmd's log (the projector's loader and encoder) here too: it has a
    callback of its own, `mtmd_log_set`, and its helpers another."""
    global _mtmd_installed
    install()
    import llama_cpp.mtmd_cpp as mtmd_cpp

    with _lock:
        if _mtmd_installed:
            return
        mtmd_cpp.mtmd_log_set(_callback, ctypes.c_void_p(0))
        mtmd_cpp.mtmd_helper_log_set(_callback, ctypes.c_void_p(0))
        _mtmd_installed = True


_mtmd_installed = False


def _keep(text: str) -> None:
    global _count
    with _lock:
        _lines.append((_count, text))
        _count += 1
    if _verbose:
        print(text, end="", file=sys.stderr, flush=True)


def set_verbose(verbose: bool) -> None:
    """Print llama.cpp's log lines on stderr as they come (they are kept either way)."""
    global _verbose
    _verbose = verbose


def verbose() -> bool:
    """Whether the log is printed as it comes (llama-cpp-python's own `verbose`
    follows it, so model loading prints too)."""
    return _verbose


def mark() -> int:
    """A position in the log, for `text_since`."""
    with _lock:
        return _count


def text_since(position: int) -> str:
    """Everything logged since `position` (as far as the last lines reach back)."""
    with _lock:
        return "".join(text for index, text in _lines if index >= position)


def recent(lines: int = 12) -> str:
    """llama.cpp's reason for a failure: its error lines among the last log lines, or,
    when it logged none, the last few lines."""
    with _lock:
        tail = "".join(text for _, text in list(_lines)[-lines * 8:])
    last = tail.strip().splitlines()
    errors = [line for line in last if any(w in line.lower() for w in _ERROR_WORDS)]
    return "\n".join((errors or last)[-lines:])


_ERROR_WORDS = ("error", "failed", "unable", "cannot", "invalid")
