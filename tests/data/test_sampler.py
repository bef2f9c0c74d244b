import pytest

from orl.data.sampler import StepBatchSampler


def _steps(sampler: StepBatchSampler) -> list[list[tuple[int, int]]]:
    return list(sampler)


def test_global_step_content_does_not_depend_on_world_size() -> None:
    single = _steps(StepBatchSampler(50, 8, 3, seed=4))
    ranks = [_steps(StepBatchSampler(50, 8, 3, seed=4, rank=r, world_size=2)) for r in (0, 1)]
    assert len(single) == 3 * (50 // 8)
    for s, (a, b) in enumerate(zip(*ranks, strict=True)):
        assert a + b == single[s]  # rank 0 holds the first half, rank 1 the second


def test_each_epoch_is_a_fresh_permutation_without_repeats() -> None:
    steps = _steps(StepBatchSampler(20, 5, 2, seed=1))
    epoch0 = [i for batch in steps[:4] for _, i in batch]
    epoch1 = [i for batch in steps[4:] for _, i in batch]
    assert sorted(epoch0) == list(range(20)) == sorted(epoch1)
    assert epoch0 != epoch1
    assert {e for batch in steps[4:] for e, _ in batch} == {1}


def test_start_step_resumes_mid_epoch_exactly() -> None:
    full = _steps(StepBatchSampler(30, 4, 2, seed=0))
    assert _steps(StepBatchSampler(30, 4, 2, seed=0, start_step=9)) == full[9:]


def test_incomplete_last_batch_is_dropped_and_errors_are_explicit() -> None:
    assert len(StepBatchSampler(10, 4, 1)) == 2
    with pytest.raises(ValueError, match="divisible"):
        StepBatchSampler(10, 5, 1, world_size=2)
    with pytest.raises(ValueError, match="larger than the data set"):
        StepBatchSampler(3, 4, 1)
