"""A disk that fills up for real, for benchmarks/fault_cases.py (as tests/test_disk_full.py).

`TmpfsDisk`: a 16 MiB tmpfs mounted at a path (needs root and a kernel that lets it mount),
filled by a filler file to its last page and kept full until `free`; every process writing
there (coordinator and islands) meets ENOSPC. `RlimitDisk`: the coordinator's
RLIMIT_FSIZE set to 0 from outside (`resource.prlimit`, Linux), so every write that would
make a file grow fails with EFBIG (run it with SIGXFSZ ignored); the islands keep writing.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path


class Unavailable(Exception):
    """This machine cannot make the fault (the row is skipped with the reason)."""


class TmpfsDisk:
    """A 16 MiB tmpfs at `path`, filled to its last page (and kept so) from `fill` to `free`."""

    kind = "tmpfs"

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        if not sys.platform.startswith("linux"):
            raise Unavailable("tmpfs needs Linux")
        try:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(path)],
                                  capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise Unavailable(f"cannot run mount: {error}") from None
        if done.returncode != 0:
            raise Unavailable(f"mount -t tmpfs refused: {done.stderr.strip()[:80]}")
        self.filler = path / "filler"
        self.full = threading.Event()
        self.keeper: threading.Thread | None = None

    def fill(self, pids: tuple[int, ...] = ()) -> None:
        self.top_up()
        time.sleep(0.3)  # writes under way when it filled have failed and freed their pages
        self.top_up()
        if os.statvfs(self.path).f_bavail != 0:
            raise RuntimeError(f"the tmpfs at {self.path} should be full and is not")
        self.full.clear()
        self.keeper = threading.Thread(target=self.keep_full, daemon=True)
        self.keeper.start()

    def top_up(self) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for chunk in (1 << 20, 4096, 512):
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * chunk)
        finally:
            os.close(fd)

    def keep_full(self) -> None:
        while not self.full.wait(0.02):
            self.top_up()

    def free(self) -> None:
        self.full.set()
        if self.keeper is not None:
            self.keeper.join()
            self.keeper = None
        with contextlib.suppress(FileNotFoundError):
            self.filler.unlink()

    def close(self) -> None:
        self.free()
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=30)


class RlimitDisk:
    """A "disk" full for the processes given to `fill`: their RLIMIT_FSIZE set to 0."""

    kind = "rlimit"

    def __init__(self, path: Path) -> None:
        if not hasattr(resource, "prlimit"):
            raise Unavailable("resource.prlimit needs Linux")
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.saved: dict[int, tuple[int, int]] = {}

    def fill(self, pids: tuple[int, ...] = ()) -> None:
        for pid in pids:
            soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
            self.saved[pid] = (soft, hard)
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, hard))

    def free(self) -> None:
        for pid, limits in self.saved.items():
            with contextlib.suppress(ProcessLookupError):
                resource.prlimit(pid, resource.RLIMIT_FSIZE, limits)
        self.saved.clear()

    def close(self) -> None:
        self.free()


def full_disk(path: Path) -> tuple[TmpfsDisk | RlimitDisk, str]:
    """A real tmpfs where mount works, else RLIMIT_FSIZE on the coordinator; and a note."""
    try:
        return TmpfsDisk(path), "16 MiB tmpfs filled"
    except Unavailable as why:
        return RlimitDisk(path), f"RLIMIT_FSIZE=0 on the coordinator ({why})"
