"""One family of user-facing errors. Only the CLI catches them (see ``edgedigit.cli``)."""


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
