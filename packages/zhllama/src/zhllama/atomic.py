"""Atomic file writes: a killed run never leaves a half-written file behind.

Every stage writes through these helpers: the data goes to a temporary file in the same folder,
is flushed to disk, and only then renamed over the target (rename is atomic on POSIX).

A write that fails for lack of room (a full disk, a quota) is an `OSError` naming the target
the user asked for, never the temporary: also when the writer is a library that turns the
operating system's error into its own (torch.save raises a RuntimeError from its zip writer
with the OSError as context), so the CLI can print it as one line.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from zhllama.errors import ZhllamaError


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
    with _temporary_sibling(target) as tmp, open(tmp, mode, **kwargs) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary sibling of `path` for a writer that opens files by name (gguf's
    GGUFWriter); renamed to `path` once the block has written and closed it."""
    with _temporary_sibling(Path(path)) as tmp:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _temporary_sibling(target: Path) -> Iterator[Path]:
    """An empty temporary file beside `target`, renamed over it when the block succeeds and
    removed when it fails; errors name `target`, never the temporary."""
    tmp: str | None = None
    try:
        # Ctrl-C is held back while the temporary is created, so it arrives with `tmp` known and
        # the cleanup below removes it: no stray temporary survives an interrupt.
        with _named(target), _sigint_deferred():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        # mkstemp creates the file 0600; give it the permissions a plain open() would have.
        os.chmod(fd, 0o666 & ~_umask())
        os.close(fd)
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(e, OSError) and e.filename in (None, tmp):
            # a full disk or failed rename: name the file the user asked for, not our temporary
            raise OSError(e.errno, e.strerror, str(target)) from e
        cause = _storage_error(e)
        if cause is not None:
            raise OSError(cause.errno, cause.strerror, str(target)) from e
        raise


# errnos that mean "the storage could not take the data", whoever reports them
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS}


def _storage_error(e: BaseException) -> OSError | None:
    """The OSError behind a library's own exception for a failed write, if there is one.

    Only for errors that are not already ours to report (`ZhllamaError` keeps its message) and
    only for storage errnos, so an unrelated OSError handled earlier is never blamed."""
    from zhllama.errors import ZhllamaError

    if isinstance(e, (OSError, ZhllamaError)) or not isinstance(e, Exception):
        return None
    seen: BaseException | None = e
    for _ in range(8):  # a short chain; never loop on a cycle
        seen = seen.__cause__ or seen.__context__ if seen is not None else None
        if isinstance(seen, OSError) and seen.errno in _STORAGE_ERRNOS:
            return seen
    return None


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


def clean_stale_temporaries(folder: str | os.PathLike[str], names: list[str]) -> list[Path]:
    """Remove the temporaries a killed writer left in `folder` for the files `names`.

    `atomic_open` names its temporary `.{name}.XXXXXXXX.tmp` beside the target and removes it
    itself on any error it sees, but a SIGKILL (or a power cut) leaves it behind. Only files
    matching that pattern for the given names are touched, so call it where no other writer
    of those files is running (a run folder when the run starts). Returns what was removed."""
    removed = []
    for name in names:
        for p in Path(folder).glob(f".{glob_escape(name)}.*.tmp"):
            if p.is_file() and not p.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed.append(p)
    return removed


def glob_escape(name: str) -> str:
    """`name` with glob's special characters taken literally."""
    import glob

    return glob.escape(name)


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


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON a file holds (one this project or a tool wrote); bad JSON or bad UTF-8 is a
    ZhllamaError naming the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ZhllamaError(f"{path}: not valid JSON ({e})") from None


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
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            # name the file in the target folder (or the folder), never our temporary
            inside = _relative_to(Path(e.filename), tmp) if e.filename is not None else Path()
            if inside is not None:
                raise OSError(e.errno, e.strerror, str(target / inside)) from e
        cause = _storage_error(e)
        if cause is not None:
            inside = _relative_to(Path(cause.filename or tmp), tmp)
            raise OSError(cause.errno, cause.strerror, str(target / (inside or ""))) from e
        raise


def _relative_to(path: Path, folder: Path) -> Path | None:
    try:
        return path.relative_to(folder)
    except ValueError:
        return None
