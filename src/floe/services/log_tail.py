"""Reading a log's last lines and following it: plain files a daemon appends to, and journals.

Following runs in the server's event loop and holds no thread: a file is polled (a read of what
was appended, every POLL_INTERVAL), a journal is read from `journalctl -f` through a pipe the
loop watches. Everything a follower opened goes when its consumer stops iterating.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

from floe.host import commands

POLL_INTERVAL = 0.25
# What a tail reads at most from the end of a file, whatever the number of lines asked.
MAX_TAIL_BYTES = 8 << 20
READ_CHUNK = 64 << 10
JOURNAL_TIMEOUT = 30.0
# How often a quiet journal follower checks that the journal is still there (its node deleted).
JOURNAL_CHECK = 2.0


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _tail_of(fd: int, size: int, lines: int) -> list[str]:
    """The last `lines` lines of the first `size` bytes of an open file."""
    if lines <= 0 or size <= 0:
        return []
    start, data = size, b""
    while start > 0 and data.count(b"\n") <= lines and size - start < MAX_TAIL_BYTES:
        step = min(READ_CHUNK, start)
        start -= step
        data = os.pread(fd, step, start) + data
    text = _decode(data).splitlines()
    if start > 0 and text:
        text = text[1:]  # the first line read is cut
    return text[-lines:]


def tail_file(path: Path, lines: int) -> list[str]:
    """The file's last `lines` lines ([] if it does not exist)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    try:
        return _tail_of(fd, os.fstat(fd).st_size, lines)
    finally:
        os.close(fd)


def _journal_argv(directory: Path, lines: int, follow: bool) -> list[str]:
    argv = [commands.binary("journalctl"), "-D", str(directory), "--no-pager", "--quiet", "-o", "short-iso",
            "-n", str(lines)]
    return argv + ["--follow"] if follow else argv


def tail_journal(directory: Path, lines: int) -> list[str]:
    """The journal's last `lines` entries, one line each ([] if it has none)."""
    if lines <= 0 or not directory.is_dir():
        return []
    result = commands.run(_journal_argv(directory, lines, follow=False), check=False, timeout=JOURNAL_TIMEOUT)
    return result.stdout.splitlines()


async def follow_file(path: Path, lines: int) -> AsyncIterator[str]:
    """The file's last `lines` lines, then each line appended to it; ends when the file is gone.

    A file replaced (a new inode) or truncated is read again from its start.
    """
    fd: int | None = None
    try:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        position = os.fstat(fd).st_size
        for line in await asyncio.to_thread(_tail_of, fd, position, lines):
            yield line
        partial = b""
        while True:
            data = os.pread(fd, READ_CHUNK, position)
            if data:
                position += len(data)
                *complete, partial = (partial + data).split(b"\n")
                for line in complete:
                    yield _decode(line)
                continue
            try:
                current = os.stat(path)
            except FileNotFoundError:
                return
            if current.st_ino != os.fstat(fd).st_ino or current.st_size < position:
                os.close(fd)
                fd = None
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                position, partial = 0, b""
                continue
            await asyncio.sleep(POLL_INTERVAL)
    finally:
        if fd is not None:
            os.close(fd)


async def follow_journal(directory: Path, lines: int) -> AsyncIterator[str]:
    """The journal's last `lines` entries, then each new one (journalctl --follow); ends when it is gone."""
    if not directory.is_dir():
        return
    # Popen and a pipe the loop watches, not asyncio's subprocesses: on this Python those wait
    # for the child in a thread each.
    proc = subprocess.Popen(_journal_argv(directory, lines, follow=True), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=commands.clean_env())
    assert proc.stdout is not None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), proc.stdout)
    try:
        while True:
            try:
                line = await asyncio.wait_for(reader.readline(), JOURNAL_CHECK)
            except TimeoutError:
                if not directory.is_dir():
                    return
                continue
            except ValueError:  # a line past the reader's limit: skip it
                continue
            if not line:
                return  # journalctl ended
            yield _decode(line.rstrip(b"\n"))
    finally:
        transport.close()
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
