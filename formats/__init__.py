"""The .p4d container, its codecs and the `p4d` tool. numpy, msgpack, zstandard, opencv only."""
