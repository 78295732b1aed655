"""Atomic file writes: a killed run never leaves a half-written file behind.

Every stage writes through these helpers: the data goes to a temporary file in the same folder,
is flushed to disk, and only then renamed over the target (rename is atomic on POSIX).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path` for writing; rename it to `path` on success."""
    target = Path(path)
    if target.exists() and not target.is_file() and not target.is_dir():
        # a device, pipe or socket (/dev/stdout, /dev/null): renaming over it would replace the
        # node itself, so write straight through; there is no half-written file to fear there
        with _named(target), open(target, mode, **kwargs) as f:
            yield f
        return
    tmp: str | None = None
    try:
        # Ctrl-C is held back while the temporary is created, so it arrives with `tmp` known and
        # the cleanup below removes it: no stray temporary survives an interrupt.
        with _named(target), _sigint_deferred():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        # mkstemp creates the file 0600; give it the permissions a plain open() would have.
        os.chmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(e, OSError) and e.filename in (None, tmp):
            # a full disk or failed rename: name the file the user asked for, not our temporary
            raise OSError(e.errno, e.strerror, str(target)) from e
        raise


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Block SIGINT inside the block; a Ctrl-C meanwhile is delivered when it ends."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def _named(target: Path) -> Iterator[None]:
    """OSErrors without a file name (or naming a temporary) are re-raised naming `target`."""
    try:
        yield
    except OSError as e:
        if e.filename is None or Path(e.filename).name.endswith(".tmp"):
            raise OSError(e.errno, e.strerror, str(target)) from e
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a directory in a temporary sibling, then move it into place as a whole.

    An existing directory at `path` is replaced only once the new one is complete; on any error
    the temporary directory is removed and `path` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary sibling of `path` for a writer that opens files by name (gguf's
    GGUFWriter); renamed to `path` once the block has written and closed it."""
    target = Path(path)
    tmp: str | None = None
    try:
        with _named(target), _sigint_deferred():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.chmod(fd, 0o666 & ~_umask())
        os.close(fd)
        yield Path(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(e, OSError) and e.filename in (None, tmp):
            raise OSError(e.errno, e.strerror, str(target)) from e
        raise
