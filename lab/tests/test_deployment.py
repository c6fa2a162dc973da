"""The Deployment controller's rolling update and the kubelet's stop timings, as arithmetic."""

import itertools

import pytest
from hellolb_lab.deployment import PodStop, RollingUpdate, deletion_order, step
from hellolb_lab.errors import LabError


@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas", "expected"),
    [
        ("25%", "25%", 3, (1, 0)),  # the API's defaults: one at a time for three pods
        ("25%", "25%", 5, (2, 1)),  # surge rounds up, unavailable rounds down
        ("25%", "25%", 4, (1, 1)),
        (1, 0, 5, (1, 0)),
        ("0%", "0%", 3, (0, 1)),  # both zero: the controller lets one pod be unavailable
        ("100%", 0, 3, (3, 0)),
    ],
)
def test_percentages_become_pods_as_the_api_rounds_them(surge, unavailable, replicas, expected):
    assert RollingUpdate(surge, unavailable).resolve(replicas) == expected


def test_a_share_that_is_neither_a_count_nor_a_percentage_is_refused():
    with pytest.raises(LabError, match="maxSurge is a count or a percentage, not 'half'"):
        RollingUpdate("half").resolve(3)


def roll(replicas: int, surge: int, unavailable: int) -> list[tuple[int, int, int]]:
    """A whole rollout, every new pod ready and available one step after it was created:
    ``(old, new, available new)`` after each step of the controller."""
    old, new, available, history = replicas, 0, 0, []
    for _ in range(4 * replicas + 4):
        move = step(replicas, surge, unavailable, old=old, new=new, new_available=available)
        available, new, old = new, new + move.start, old - move.delete
        history.append((old, new, available))
        if not old and available == replicas:
            return history
    raise AssertionError(f"no end: {history}")


@pytest.mark.parametrize(("replicas", "surge", "unavailable"), [(3, 1, 0), (5, 2, 1), (5, 1, 0)])
def test_a_rollout_stays_within_the_surge_and_the_unavailable_pods(replicas, surge, unavailable):
    for old, new, available in roll(replicas, surge, unavailable):
        assert old + new <= replicas + surge
        assert old + available >= replicas - unavailable


def test_one_at_a_time_deletes_an_old_pod_only_once_its_replacement_is_available():
    history = roll(5, 1, 0)
    # never more than one new pod on its way, never an old one short of five available
    assert all(new - available <= 1 and old + available >= 5 for old, new, available in history)
    olds = [old for old, _, _ in history]
    assert all(a - b in (0, 1) for a, b in itertools.pairwise(olds))


def test_with_five_pods_the_defaults_start_two_and_delete_one_at_once():
    first = step(5, 2, 1, old=5, new=0, new_available=0)
    assert (first.start, first.delete) == (2, 1)
    # the deleted pod no longer counts: a third new one fits under the surge
    assert step(5, 2, 1, old=4, new=2, new_available=0).start == 1


def test_the_most_recently_started_pods_are_deleted_first():
    started = {"server-1": 10.0, "server-2": 10.0, "server-3": 10.0, "server-4": 20.0}
    assert deletion_order(started) == ["server-4", "server-1", "server-2", "server-3"]


def test_sigterm_follows_the_pause_and_sigkill_the_grace_counted_from_the_pause():
    stop = PodStop(prestop_s=5, grace_s=30)
    assert (stop.sigterm_after_s, stop.sigkill_after_s) == (5, 30)
    # a pause longer than the grace is cut short, and the kubelet adds 2 s before SIGKILL
    long = PodStop(prestop_s=40, grace_s=30)
    assert (long.sigterm_after_s, long.sigkill_after_s) == (30, 32)
