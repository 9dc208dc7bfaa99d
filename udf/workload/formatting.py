"""Bulk JSON-lines formatting with Arrow compute kernels (no per-record Python loop).

A line is the element-wise concatenation of precomputed literal pieces and Arrow's
integer/float-to-string casts; optional fields become empty pieces where absent, so rows with
and without ``value`` or segment fields are formatted together and stay in arrival order.
The result is one Arrow string array whose data buffer *is* the file content.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from udf.workload.hashing import COUNTRIES, PLATFORMS

if TYPE_CHECKING:
    import pyarrow as pa


def _pa():
    import pyarrow as pa
    import pyarrow.compute as pc

    return pa, pc


def event_lines(
    uids: np.ndarray,
    types: np.ndarray,
    ts: np.ndarray,
    values: np.ndarray,
    segments: np.ndarray,
    country: np.ndarray,
    platform: np.ndarray,
    type_names: list[str],
) -> pa.Array:
    """``{"user_id":..,"event_type":..,"ts":..[,"value":..][,"country":..,"platform":..]}\\n``."""
    pa, pc = _pa()
    type_piece = pa.array([f',"event_type":"{name}","ts":' for name in type_names])
    seg_piece = pa.array(
        [f',"country":"{c}","platform":"{p}"' for c in COUNTRIES for p in PLATFORMS]
    )
    has_value = ~np.isnan(values)
    value_str = pc.cast(pa.array(np.where(has_value, values, 0.0)), pa.string())
    value_part = pc.if_else(
        pa.array(has_value), pc.binary_join_element_wise(',"value":', value_str, ""), ""
    )
    seg_code = country.astype(np.int32) * len(PLATFORMS) + platform.astype(np.int32)
    seg_part = pc.if_else(pa.array(segments), pc.take(seg_piece, pa.array(seg_code)), "")
    return pc.binary_join_element_wise(
        '{"user_id":',
        pc.cast(pa.array(uids, type=pa.int64()), pa.string()),
        pc.take(type_piece, pa.array(types.astype(np.int32))),
        pc.cast(pa.array(ts, type=pa.int64()), pa.string()),
        value_part,
        seg_part,
        "}\n",
        "",
    )


def activation_lines(
    uids: np.ndarray,
    experiments: np.ndarray,
    groups: np.ndarray,
    ts: np.ndarray,
    pieces: list[str],
) -> pa.Array:
    """``{"user_id":..,"experiment":..,"group":..,"ts":..}\\n``; ``pieces[e * 3 + g]`` is the middle."""
    pa, pc = _pa()
    code = experiments.astype(np.int32) * 3 + groups.astype(np.int32)
    return pc.binary_join_element_wise(
        '{"user_id":',
        pc.cast(pa.array(uids, type=pa.int64()), pa.string()),
        pc.take(pa.array(pieces), pa.array(code)),
        pc.cast(pa.array(ts, type=pa.int64()), pa.string()),
        "}\n",
        "",
    )


def activation_pieces(names: list[str], groups: list[tuple[str, ...]]) -> list[str]:
    pieces = []
    for name, exp_groups in zip(names, groups, strict=True):
        for g in range(3):
            group = exp_groups[g] if g < len(exp_groups) else ""
            pieces.append(f',"experiment":"{name}","group":"{group}","ts":')
    return pieces


def interleave(valid: pa.Array, extra: list[str], positions: np.ndarray) -> pa.Array:
    """``valid`` lines with the ``extra`` lines (each without newline) put at ``positions``."""
    pa, pc = _pa()
    if not extra:
        return valid
    n = len(valid) + len(extra)
    order = np.empty(n, dtype=np.int64)
    is_extra = np.zeros(n, dtype=bool)
    is_extra[positions] = True
    order[positions] = len(valid) + np.arange(len(extra))
    order[~is_extra] = np.arange(len(valid))
    both = pa.concat_arrays([valid, pa.array([line + "\n" for line in extra], pa.string())])
    return pc.take(both, pa.array(order))


def to_bytes(lines: pa.Array) -> memoryview:
    """The concatenated content of a string array (its data buffer, without copying)."""
    if len(lines) == 0:
        return memoryview(b"")
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    begin = int(offsets[lines.offset])
    end = int(offsets[lines.offset + len(lines)])
    return memoryview(lines.buffers()[2])[begin:end]
