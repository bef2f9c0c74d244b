"""Progress bars with rate and ETA (tqdm) for the jobs that can run for minutes.

Bars go to stderr and stay silent when stderr is not a terminal (log files, pipes, tests), so that
only an interactive session sees them and logs stay readable.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn, TypeVar, overload

from tqdm import tqdm

T = TypeVar("T")


@overload
def progress(
    iterable: Iterable[T],
    *,
    total: int | None = ...,
    desc: str,
    unit: str = ...,
) -> tqdm[T]: ...


@overload
def progress(iterable: None = ..., *, total: int, desc: str, unit: str = ...) -> tqdm[NoReturn]: ...


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str,
    unit: str = "it",
) -> tqdm[Any]:
    """A tqdm bar over `iterable`, or one updated by hand (`.update(n)`) towards `total`."""
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=None,  # tqdm turns itself off when stderr is not a terminal
        dynamic_ncols=True,
        mininterval=1.0,
    )
