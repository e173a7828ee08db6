"""Where savefile bytes go and come from: paths, binary file objects, or ``-`` for stdout/stdin.

Writers keep whole records in a bytearray and hand the kernel whole records only. When a write fails
part-way (a full disk: ENOSPC, EDQUOT), the file is cut back to the end of the last complete record, so
every reader still sees a clean file; the writer then raises :class:`WriteError` (a SavefileError) that
says how many whole records of the failed write did reach the output, so the writers can count exactly
what is in the file and what is not.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import sys
from collections.abc import Callable
from typing import BinaryIO

from ..errors import SavefileError

#: Flush once this many bytes of whole records are buffered: big enough that the write system call
#: is a small share of the per-packet cost, small enough to lose little on a crash.
FLUSH_THRESHOLD = 256 * 1024
#: The most a reader asks the file for at once. A record or block may declare up to 16 MiB; reading it in
#: pieces allocates only what the file really holds, so a short file that declares a huge record costs
#: 1 MiB, not 16, before the truncation is found.
READ_CHUNK = 1 << 20

_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: the reader of a pipe or socket went away (``capture -w - | head``): the output is closed, not broken
_CLOSED = frozenset({errno.EPIPE, errno.ECONNRESET})

PathOrFile = str | os.PathLike[str] | BinaryIO
#: ``boundary(buf, n)``: (length of the longest run of whole records at the start of ``buf`` within
#: ``n`` bytes, how many packet records that run holds)
Boundary = Callable[[bytes | bytearray, int], tuple[int, int]]


class WriteError(SavefileError):
    """Writing a savefile failed part-way. ``errno`` is the system's reason (ENOSPC, EDQUOT, EPIPE, ...;
    None when unknown), ``reason`` its text, ``records`` the whole packet records of the failed write that
    reached the output before it failed (the writers count them as written, the rest as not written),
    ``output_closed`` whether the reader of a pipe went away (EPIPE), which a capture treats as the end of
    its output rather than as a fault."""

    def __init__(self, message: str, errno_: int | None, reason: str, records: int) -> None:
        super().__init__(message)
        self.errno = errno_
        self.reason = reason
        self.records = records
        self.output_closed = errno_ in _CLOSED
        self.disk_full = errno_ in _DISK_FULL


def _quoted(name: str) -> str:
    """``name`` with its control characters escaped (a NUL byte, a newline), so a message stays one line."""
    return repr(name) if not name.isprintable() else name


def display_name(target: object, std: str = "<stdin>") -> str:
    if isinstance(target, str | os.PathLike):
        name = os.fspath(target)
        return std if name == "-" else str(name)
    name = getattr(target, "name", None)
    return str(name) if isinstance(name, str | bytes) else repr(target)


#: Mode of the files we create (before the umask): readable by all, writable by the owner, as tcpdump's.
FILE_MODE = 0o644


def _create(target: str | os.PathLike[str], name: str) -> BinaryIO:
    """Create (or truncate) a capture file without following a symbolic link in its last component: a
    link planted in a shared directory (``/tmp``) must not redirect a root process's capture onto another
    file. Unbuffered: the Sink buffers, and an unbuffered write tells how much got through."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    # A link someone else could have planted is refused; any other path is opened with O_NOFOLLOW, so a
    # link swapped in after this check fails the open instead of being followed. A link we may trust (our
    # own, or in a directory only trusted users write, like /dev/stdout) is followed as tcpdump would.
    planted = os.path.islink(target) and _planted(target)
    try:
        if planted:
            raise OSError(errno.ELOOP, "planted symbolic link")
        nofollow = 0 if os.path.islink(target) else os.O_NOFOLLOW
        fd = os.open(target, flags | nofollow, FILE_MODE)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise SavefileError(
                f"cannot create {name}: it is a symbolic link in a directory others can write to, owned by "
                "someone else; afpacket does not write through such links (one planted there could redirect "
                "the capture onto another file): remove it or give the link's target"
            ) from None
        raise SavefileError(f"cannot create {name}: {e.strerror}") from None
    return open(fd, "wb", buffering=0)


def _planted(target: str | os.PathLike[str]) -> bool:
    """A symbolic link that someone else could have planted: in a directory writable by others (as /tmp),
    and not owned by us. The rule of the kernel's fs.protected_symlinks, applied whatever that is set to."""
    try:
        link = os.lstat(target)
        parent = os.stat(os.path.dirname(os.path.abspath(target)))
    except OSError:
        return True
    shared = bool(parent.st_mode & (stat.S_IWOTH | stat.S_IWGRP))
    return shared and link.st_uid != os.geteuid()


class Sink:
    """A binary output that only ever receives whole records.

    ``boundary(buf, n)`` is the format's record walker: the length of the longest prefix of ``buf``
    made of complete records that fits in ``n`` bytes, and how many packet records it holds. It runs
    only after a failed write.
    """

    def __init__(self, target: PathOrFile, boundary: Boundary) -> None:
        self.name = display_name(target, "<stdout>")
        self._boundary = boundary
        self._owned = False
        self._path: str | None = None
        if isinstance(target, str | os.PathLike):
            if os.fspath(target) == "-":
                self._file: BinaryIO = _stdout()
            else:
                self._file = _create(target, self.name)
                self._owned = True
                self._path = os.fspath(target)
        elif callable(getattr(target, "write", None)):
            self._file = target
        else:
            # refused here, by name, rather than as an AttributeError at the first record written
            raise TypeError(
                f"a savefile target must be a path, '-' or a binary file object, not {type(target).__name__}"
            )
        self._write = self._file.write
        # Only a raw (unbuffered) file tells exactly how much of a failed write reached the disk.
        self._exact = self._owned or isinstance(self._file, io.RawIOBase)
        self._fd: int | None = None
        self._good = 0  # file offset just after the last complete record known to be on disk
        try:
            fd = self._file.fileno()
            if stat.S_ISREG(os.fstat(fd).st_mode):
                self._fd = fd
                self._good = self._file.tell()
        except (OSError, ValueError, AttributeError):
            pass

    @property
    def offset(self) -> int:
        """Bytes of the file known to be written (its size, for a file this sink created)."""
        return self._good

    def write_records(self, buf: bytearray, *, header: bool = False) -> None:
        """Write ``buf`` (whole records) out completely, or cut the file back and raise WriteError.
        ``header``: ``buf`` is the file header, which counts only when written whole."""
        view = memoryview(buf)
        done = 0
        failure: OSError | None = None
        try:
            while done < len(buf):
                n = self._write(view[done:])
                if n is None:  # a non-blocking raw file that would block
                    raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
                done += n
        except OSError as e:
            failure = e
        finally:
            view.release()  # before the caller clears ``buf``, which an export would forbid
        if failure is not None:
            self._fail(buf, done, failure, header)
        self._good += done

    def _fail(self, buf: bytearray, done: int, err: OSError, header: bool) -> None:
        code = err.errno
        reason = os.strerror(code) if code else str(err)
        name = errno.errorcode.get(code or 0)
        what = f"{reason} ({name})" if name else reason
        kept, records = (0, 0) if header else self._boundary(buf, done)
        fix = ""
        if code in _DISK_FULL:
            fix = "; free space on that file system or write the capture elsewhere"
        if code in _CLOSED:
            what = f"the reader closed it ({name})"
        if self._fd is not None and self._exact:
            # Drop the partial record the kernel accepted before the error.
            try:
                os.ftruncate(self._fd, self._good + kept)
                os.lseek(self._fd, self._good + kept, os.SEEK_SET)
            except OSError:
                pass
            else:
                self._good += kept
                if self._good == 0 and self._path is not None:
                    where = "not even its file header fit, so the file is removed"  # by discard()
                else:
                    where = f"the file was cut back to its last complete record (byte {self._good})"
                raise WriteError(f"writing {self.name} failed: {what}; {where}{fix}", code, reason, records) from None
        elif not self._exact:
            records = 0  # a buffered file object: no telling how much of it got through
        raise WriteError(f"writing {self.name} failed: {what}{fix}", code, reason, records) from None

    @property
    def empty(self) -> bool:
        """Nothing whole reached the output yet (not even a file header)."""
        return self._good == 0

    def discard(self) -> None:
        """Close, and remove the file if this sink created it and it holds nothing (a file header that
        did not fit on a full disk): an empty file would only be a file no reader can open."""
        path = self._path if self._owned and self._fd is not None and self._good == 0 else None
        try:
            self.close()
        finally:
            if path is not None:
                try:
                    os.unlink(path)
                except OSError:
                    pass

    def flush(self) -> None:
        flush = getattr(self._file, "flush", None)
        if flush is not None:
            try:
                flush()
            except OSError as e:
                raise SavefileError(f"flushing {self.name} failed: {e.strerror}") from None

    def close(self) -> None:
        if self._owned:
            self._owned = False
            try:
                self._file.close()
            except OSError as e:
                raise SavefileError(f"closing {self.name} failed: {e.strerror}") from None


def _stdout() -> BinaryIO:
    """Standard output for records: the descriptor itself, unbuffered, so that a write that fails (the
    reader of the pipe went away) tells exactly how many bytes got through; Python's own buffered
    stdout when there is no descriptor (an embedding that replaced sys.stdout)."""
    try:
        fd = sys.stdout.fileno()
        sys.stdout.flush()
    except (AttributeError, OSError, ValueError):
        return sys.stdout.buffer
    return open(fd, "wb", buffering=0, closefd=False)


class Source:
    """A binary input read strictly in order, which knows the byte offset of everything it returns."""

    def __init__(self, target: PathOrFile) -> None:
        self.name = display_name(target)
        self._owned = False
        if isinstance(target, str | os.PathLike):
            if os.fspath(target) == "-":
                self._file: BinaryIO = sys.stdin.buffer
            else:
                try:
                    self._file = open(target, "rb")  # noqa: SIM115 - closed in close()
                except OSError as e:
                    raise SavefileError(f"cannot open {self.name}: {e.strerror}") from None
                except ValueError:  # open() refuses a name with a NUL byte, which no file can have
                    raise SavefileError(
                        f"cannot open {_quoted(self.name)}: a file name cannot contain a NUL byte"
                    ) from None
                self._owned = True
        elif callable(getattr(target, "read", None)):
            self._file = target
        else:
            # refused here, by name, rather than as an AttributeError from the first read
            raise TypeError(
                f"a savefile source must be a path, '-' or a binary file object, not {type(target).__name__}"
            )
        self._read = self._file.read
        self.offset = 0

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; fewer only at end of file."""
        try:
            data = self._read(n if n <= READ_CHUNK else READ_CHUNK)
            if len(data) < n:
                data = self._read_rest(data, n)
        except OSError as e:
            raise SavefileError(f"{self.name}: reading at byte offset {self.offset} failed: {e.strerror}") from None
        self.offset += len(data)
        return data

    def _read_rest(self, first: bytes, n: int) -> bytes:
        """``first`` and what follows it, up to ``n`` bytes in all: pipes return short reads before the
        end, and a large length is read :data:`READ_CHUNK` bytes at a time, so a length a crafted header
        declares costs memory only as far as the file really holds it (a read of ``n`` bytes would
        allocate ``n`` first)."""
        if not first:
            return first
        parts = [first]
        got = len(first)
        while got < n:
            more = self._read(min(n - got, READ_CHUNK))
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def exact(self, n: int, what: str, start: int | None = None) -> bytes:
        """Exactly ``n`` bytes, or SavefileError naming what was cut off and where it starts
        (``start``, by default the current offset)."""
        if start is None:
            start = self.offset
        data = self.read(n)
        if len(data) < n:
            raise self.error(start, f"truncated {what}: {len(data)} of {n} bytes")
        return data

    def error(self, offset: int, what: str) -> SavefileError:
        return SavefileError(f"{self.name}: {what} at byte offset {offset}")

    def close(self) -> None:
        if self._owned:
            self._owned = False
            self._file.close()
