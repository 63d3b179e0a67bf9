"""One family of user-facing errors. Only the CLI catches them (see ``edgedigit.cli``)."""

import errno
import os


class EdgeDigitError(Exception):
    """Base of every error caused by the user's input or environment, not by a bug in edgedigit.

    The message is one line that names the file, port, board or value and says what is wrong.
    """


class DatasetError(EdgeDigitError):
    """A dataset file or folder is missing, unreadable or malformed."""


class ModelError(EdgeDigitError):
    """A model file is missing, corrupt, or not what the stage needs (e.g. float where int8 is needed)."""


class UnknownVariantError(EdgeDigitError):
    """A variant name that edgedigit does not know."""


class NotTrainedError(EdgeDigitError):
    """A stage needs a model that an earlier stage has not produced yet."""


class BoardError(EdgeDigitError):
    """A board id that does not exist, or a board file with a missing or unknown field."""


class ModelTooLargeError(BoardError):
    """The model (plus runtime) does not fit the board's flash or RAM."""


class UnsupportedOpError(ModelError):
    """The model uses an operator the chosen backend or library does not provide."""


class ToolError(EdgeDigitError):
    """An external tool (PlatformIO, a compiler, QEMU) is missing or failed."""


class DeviceError(EdgeDigitError):
    """The device misbehaved: wrong model on it, protocol error, port vanished."""


class SerialTimeoutError(DeviceError):
    """No expected answer from the device in time; names the port and the last line received."""


class BuildLockedError(EdgeDigitError):
    """Another edgedigit process is writing into the same build folder."""


# errno values meaning "this file system refuses the write": the CLI turns an OSError with one of them into
# one line naming the path (and no traceback).
WRITE_ERRNOS = frozenset(e for e in (errno.ENOSPC, errno.EROFS, errno.EACCES, getattr(errno, "EDQUOT", None),
                                     errno.EFBIG) if e is not None)


def write_error_line(e: OSError, where: str) -> str | None:
    """The one line for a refused write (or read), or None when ``e`` is not one (a bug keeps its traceback).

    Args:
        e: the error.
        where: what to name when ``e`` carries no file name (the build folder).
    """
    if e.errno not in WRITE_ERRNOS:
        return None
    path = e.filename if e.filename is not None else where
    name = errno.errorcode.get(e.errno, str(e.errno))
    advice = {errno.ENOSPC: "free some space and run it again", errno.EROFS: "the file system is mounted read-only",
              errno.EACCES: "check the permissions of the file and its folder", errno.EFBIG: "too large for this file system"}
    return f"{path}: {os.strerror(e.errno)} ({name}; {advice.get(e.errno, 'free some quota')})"
