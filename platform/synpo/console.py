"""A job's console: its own lines, one progress bar per stage and the lines that matter; everything else in a log file.

A Ray job's terminal fills with other people's output: Ray Data's progress blocks, Ray Train's
controller warnings, every worker's library warnings and C++ logs, weight-loading bars. Inside
:func:`job_console` the process's file descriptors 1 and 2 (where all of that arrives, Ray's
forwarded worker output included) feed a pipe. A thread copies every byte to the log file and shows
on the console only the lines :func:`worth_showing` keeps: the training workers' step metrics, our
warnings, and the ``synpo.*`` loggers. The job's own lines (:meth:`JobConsole.say`) and bars
(``tqdm(file=console_stream())``) go straight to the console and into the log. The log's path is
printed first and last.

``--verbose`` on the jobs (``SYNPO_VERBOSE=1``) turns this off: everything goes to the terminal as before.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import select
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

LOG_DIR_VARIABLE = "SYNPO_LOG_DIR"  # where job logs go (default runs/logs)
VERBOSE_VARIABLE = "SYNPO_VERBOSE"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
RAY_PREFIX = re.compile(r"^\([^)]*pid=\d+(?:, ip=[^)]*)?\)\s*")  # "(RayTrainWorker pid=123) " on forwarded worker lines
SHOWN = re.compile(
    r"^(step \d+ |warning: |rank \d+: resuming|memory estimate per GPU|MLflow logging)"  # the training workers' own lines
    r"|^\S+ \S+ synpo\.[\w.]+: "  # the synpo.* loggers ("%(asctime)s %(name)s: %(message)s")
)
_active: JobConsole | None = None


def worth_showing(line: str) -> str | None:
    """The console's form of one line of fd 1/2 output (colours and Ray's worker prefix removed), or None for the log only."""
    text = RAY_PREFIX.sub("", ANSI.sub("", line)).strip()
    return text if SHOWN.search(text) else None


def console_stream() -> TextIO:
    """Where progress bars go: the job's console inside :func:`job_console`, else stderr."""
    return _active.err if _active is not None else sys.stderr


def _terminal(stream: TextIO, fd: int) -> TextIO:
    """A handle on what ``stream`` writes to now, surviving ``fd`` being pointed elsewhere (a copy of the fd,
    or the stream itself where it is not the fd, as under pytest's capture)."""
    try:
        is_fd = stream.fileno() == fd
    except (AttributeError, io.UnsupportedOperation):
        is_fd = False
    return os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace") if is_fd else stream


class JobConsole:
    """The console of one job; see the module docstring."""

    def __init__(self, log_path: Path, out: TextIO, err: TextIO, log: io.BufferedWriter) -> None:
        self.log_path, self.out, self.err, self._log = log_path, out, err, log
        self._lock = threading.Lock()
        self.idle = threading.Event()  # the pipe had nothing to read for a moment
        self._pumping = False

    def say(self, text: str, error: bool = False) -> None:
        """A line of the job's own: on the console (stderr if ``error``) and in the log, after what fd 1/2 already hold."""
        self.drain()
        stream = self.err if error else self.out
        stream.write(text + "\n")
        stream.flush()
        self._write_log((text + "\n").encode("utf-8", "replace"))

    def drain(self, timeout: float = 2.0) -> None:
        """Wait until the pump has shown what was written to fd 1/2 so far (it goes idle on an empty pipe)."""
        if self._pumping:
            sys.stdout.flush()
            sys.stderr.flush()
            self.idle.clear()
            self.idle.wait(timeout)

    def _write_log(self, data: bytes) -> None:
        with self._lock:
            self._log.write(data)

    def pump(self, read_fd: int) -> None:
        """Copy the pipe to the log and show the lines worth showing, until every write end is closed. Ray's own
        processes may hold one past the job; the thread (a daemon) then drains it for the life of the process."""
        pending = b""
        self._pumping = True
        while True:
            ready, _, _ = select.select([read_fd], [], [], 0.2)
            if not ready:
                self.idle.set()
                continue
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                break
            self._write_log(chunk)
            *lines, pending = re.split(rb"\r|\n", pending + chunk)
            for line in lines:
                shown = worth_showing(line.decode("utf-8", "replace"))
                if shown:
                    self.out.write(shown + "\n")
                    self.out.flush()
        os.close(read_fd)
        self._pumping = False
        self.idle.set()


def _ray_running() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def default_log_path(job: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return Path(os.environ.get(LOG_DIR_VARIABLE, "runs/logs")) / f"{job}-{stamp}-{os.getpid()}.log"


@contextlib.contextmanager
def job_console(job: str, verbose: bool = False, log_path: Path | None = None) -> Iterator[JobConsole | None]:
    """Route fd 1/2 through the filter for the ``with`` block (None and nothing changed when ``verbose``)."""
    global _active
    if verbose or os.environ.get(VERBOSE_VARIABLE) == "1":
        yield None
        return
    log_path = (log_path or default_log_path(job)).absolute()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    log = open(log_path, "ab", buffering=0)  # noqa: SIM115 (open for the process's life: Ray's processes may write later)
    console = JobConsole(log_path, _terminal(sys.stdout, 1), _terminal(sys.stderr, 2), log)
    console.say(f"{job}: full log in {log_path} (the console shows the lines that matter; --verbose shows everything)")
    saved = os.dup(1), os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    threading.Thread(target=console.pump, args=(read_fd,), name="synpo-console", daemon=True).start()
    _active = console
    ray_before = _ray_running()
    try:
        yield console
    finally:
        _active = None
        if _ray_running() and not ray_before:  # the Ray this job started: its last forwarded lines land in the log too
            import ray

            ray.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        console.say(f"{job}: full log in {log_path}")  # after what was written before the restore


def say(text: str, error: bool = False) -> None:
    """A line of the job's own: to the active job console, else printed (to stderr if ``error``)."""
    if _active is not None:
        _active.say(text, error)
    else:
        print(text, file=sys.stderr if error else sys.stdout, flush=True)
