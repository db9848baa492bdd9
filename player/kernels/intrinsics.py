"""LLVM intrinsics the kernels call that numba does not offer: a cache-prefetch hint and an
8-byte load of two 32-bit words."""

from __future__ import annotations

import numpy as np  # noqa: F401  (numba typing)
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def _prefetch(typingctx, arr, idx):
    """A hint that arr[idx] (1-D, C-contiguous) is read soon: llvm.prefetch (read, keep in all
    cache levels). No load and no fault, so idx may point past a row's content."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C" and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        a, i = args
        data = context.make_array(signature.args[0])(context, builder, a).data
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", fnty=fnty)
        builder.call(fn, [builder.bitcast(builder.gep(data, [i]), i8p), ir.Constant(i32, 0), ir.Constant(i32, 3),
                          ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return types.void(arr, idx), codegen


@intrinsic
def _load_pair(typingctx, arr, idx):
    """uint64 = arr[idx] | arr[idx + 1] << 32 of a C-contiguous 1-D uint32 array, in one 8-byte
    load (little-endian). A vector loop then fetches the two taps of a bilinear footprint's row
    with one 64-bit gather instead of two 32-bit ones (numba indexes whole elements only). The
    caller keeps idx + 1 inside the array; no bounds check, as with numba's own indexing."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.uint32 and arr.ndim == 1
            and arr.layout == "C" and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        a, i = args
        data = context.make_array(signature.args[0])(context, builder, a).data
        return builder.load(builder.bitcast(builder.gep(data, [i]), ir.IntType(64).as_pointer()), align=4)
    return types.uint64(arr, idx), codegen
