"""An unusable image is replaced by others, all distinct, whatever the data-set size."""

from __future__ import annotations

import pytest
import torch

from orl.data.decode import Decoded, UnusableImage
from orl.data.sources import DataSourceError
from orl.data.views import BASE_STRIDE, MAX_REPLACEMENTS, RobustImageDataset, replacement_stride


class _Paths:
    """Stands for an ImageList of `n` files; only `len` and `path` are used."""

    sources = ("stub",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def path(self, i: int) -> str:
        return f"img_{i}.jpg"


class _Stub(RobustImageDataset):
    """Images in `bad` cannot be decoded; the others decode to nothing in particular."""

    def __init__(self, n: int, bad: set[int]) -> None:
        super().__init__(_Paths(n), seed=0)  # type: ignore[arg-type]
        self.bad = bad

    def load(self, index: int) -> Decoded:
        if index in self.bad:
            raise UnusableImage("corrupt")
        return Decoded(None, (1, 1))  # type: ignore[arg-type]

    def make_views(self, index: int, decoded: Decoded) -> dict[str, list[torch.Tensor]]:
        return {}


@pytest.mark.parametrize("n", [*range(1, 40), BASE_STRIDE, 2 * BASE_STRIDE, 3 * BASE_STRIDE])
def test_replacements_visit_distinct_images(n: int) -> None:
    stride = replacement_stride(n)
    tried = {(5 + k * stride) % n for k in range(min(n, MAX_REPLACEMENTS))}
    assert len(tried) == min(n, MAX_REPLACEMENTS)


def test_a_size_that_is_a_multiple_of_the_stride_still_finds_a_usable_image() -> None:
    n = 3 * BASE_STRIDE
    orbit = {0, BASE_STRIDE, 2 * BASE_STRIDE}  # what 0 + k * 7919 (mod n) would try forever
    sample = _Stub(n, orbit)[(0, 0)]
    assert sample.index not in orbit and len(sample.skipped) == 1


def test_nothing_usable_is_a_one_line_data_error() -> None:
    with pytest.raises(DataSourceError) as info:
        _Stub(5, set(range(5)))[(0, 2)]
    assert "img_2.jpg and the 4 images tried in its place" in str(info.value)
    assert "\n" not in str(info.value)


def test_an_undecodable_data_set_is_refused_up_front() -> None:
    _Stub(5, {0, 1, 2, 3}).require_usable()  # one usable image is enough
    with pytest.raises(DataSourceError, match="none of the 5 images tried can be decoded"):
        _Stub(5, set(range(5))).require_usable()
