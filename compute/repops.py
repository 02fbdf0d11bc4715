"""Public re-export of the reproducible operators (see :mod:`compute._repops`)."""

from ._repops import (
    mm_bits,
    rexp,
    rlog,
    rlog_softmax,
    rmax,
    rmean_all,
    rmm,
    rsoftmax,
    rsum,
    rsum_rows,
    sqrt_rn,
)

__all__ = [
    "mm_bits",
    "rexp",
    "rlog",
    "rlog_softmax",
    "rmax",
    "rmean_all",
    "rmm",
    "rsoftmax",
    "rsum",
    "rsum_rows",
    "sqrt_rn",
]
