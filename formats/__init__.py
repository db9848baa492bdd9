"""The .p4d container, its codecs and the `p4d` tool. numpy, msgpack, zstandard, opencv only."""

from formats.p4d import P4DFormatError
from formats.reader import P4DReader
from formats.writer import P4DWriter

__all__ = ["P4DFormatError", "P4DReader", "P4DWriter"]
