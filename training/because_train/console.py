"""What a stage tells the person running it: the package's logging, set up once by each entry point,
and loop progress, a tqdm bar on a terminal or plain lines elsewhere.

Plain lines matter: long runs go to log files that people tail (`[qra] epoch 1/6 step 50/702 loss
...`), so off a terminal every loop keeps its own periodic line and never writes a carriage return.
"""

import logging
import os
import sys
from types import TracebackType

from tqdm import tqdm

PACKAGE = "because_train"


def interactive() -> bool:
    """Whether stderr is a terminal: bars there, plain lines where it is a file or a pipe."""
    return sys.stderr.isatty()


def _terminal_width() -> int | None:
    """Columns of the terminal on stderr; None when it cannot say."""
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None


class _StderrHandler(logging.Handler):
    """One plain line per record on the current sys.stderr, printed above any live progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            if interactive():
                tqdm.write(msg, file=sys.stderr)
            else:
                sys.stderr.write(msg + "\n")
                sys.stderr.flush()
        except Exception:
            self.handleError(record)


def setup_logging(level: int = logging.INFO) -> None:
    """Messages of the package's loggers (`logging.getLogger(__name__)` in each module) go to stderr as
    they are, from `level` up: INFO by default, WARNING with --quiet, DEBUG with --verbose. Other
    libraries' loggers are left alone. Calling it again replaces the earlier setting."""
    logger = logging.getLogger(PACKAGE)
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


class Progress:
    """One loop's progress: a tqdm bar when stderr is a terminal (and INFO is shown), otherwise the
    loop's own plain lines. The loop calls `update` every step and `line` at its own pace; each
    call does nothing where the other form is shown, so a loop says both without asking which."""

    def __init__(
        self, logger: logging.Logger, desc: str, total: int, unit: str = "it", enabled: bool = True
    ) -> None:
        self.logger = logger
        self.bar: tqdm | None = None
        # A terminal that reports zero columns (a bare pty) would show an empty bar: plain lines there.
        if enabled and interactive() and _terminal_width() != 0 and logger.isEnabledFor(logging.INFO):
            self.bar = tqdm(
                total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True
            )
        self.plain = enabled and self.bar is None

    def update(self, done: int, status: str = "") -> None:
        """`done` of the total so far, and a short status beside the bar (loss, retries...)."""
        if self.bar is None:
            return
        if status:
            self.bar.set_postfix_str(status, refresh=False)
        self.bar.update(done - self.bar.n)

    def line(self, msg: str) -> None:
        """A plain progress line (INFO), shown where there is no bar."""
        if self.plain:
            self.logger.info(msg)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
