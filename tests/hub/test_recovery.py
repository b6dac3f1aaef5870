"""Stream-position arithmetic never reports a stream with a hole as recovered."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from wsviews.hub.records import Publication, StreamPosition
from wsviews.hub.recovery import Next, next_publication, recover, unrecoverable_history


def pubs(*offsets: int) -> tuple[Publication, ...]:
    return tuple(Publication(b"0", offset=o) for o in offsets)


def test_recovering_the_missed_publications() -> None:
    """Publications since+1..top in order recover the client to the top."""
    outcome = recover(StreamPosition(2, "E"), StreamPosition(4, "E"), pubs(3, 4))
    assert outcome.recovered and [p.offset for p in outcome.publications] == [3, 4]
    assert outcome.position == StreamPosition(4, "E")


def test_an_empty_epoch_is_any_epoch() -> None:
    """A client that never saw an epoch recovers by offset alone."""
    assert recover(StreamPosition(4, ""), StreamPosition(4, "E"), ()).recovered


def test_not_recovered_cases_return_nothing_and_the_top() -> None:
    """Future offset, other epoch, gap, reordering or truncation: not recovered, start at the top."""
    top = StreamPosition(5, "E")
    for since, read in [((6, "E"), ()), ((3, "X"), (4, 5)), ((3, "E"), (5,)), ((3, "E"), (5, 4)),
                        ((3, "E"), (4,)), ((3, "E"), ())]:
        outcome = recover(StreamPosition(*since), top, pubs(*read))
        assert (outcome.recovered, outcome.publications, outcome.position) == (False, (), top)


def test_next_publication() -> None:
    """The next offset is delivered, older ones are duplicates, a skipped one or new epoch is a gap."""
    here = StreamPosition(5, "E")
    assert next_publication(here, 6, "E") is Next.DELIVER
    assert next_publication(here, 6, "") is Next.DELIVER
    assert next_publication(here, 5, "E") is Next.DUPLICATE
    assert next_publication(here, 1, "E") is Next.DUPLICATE
    assert next_publication(here, 7, "E") is Next.GAP
    assert next_publication(here, 6, "F") is Next.GAP
    assert next_publication(StreamPosition(0, ""), 1, "F") is Next.DELIVER


def test_unrecoverable_history() -> None:
    """History since another epoch, or (forward) beyond the top, cannot be served."""
    top = StreamPosition(5, "E")
    assert unrecoverable_history(StreamPosition(1, "X"), top, False)
    assert unrecoverable_history(StreamPosition(6, "E"), top, False)
    assert not unrecoverable_history(StreamPosition(6, "E"), top, True)
    assert not unrecoverable_history(StreamPosition(2, ""), top, False)


@settings(max_examples=300, derandomize=True)
@given(st.integers(0, 20), st.integers(0, 20), st.lists(st.integers(1, 25), max_size=12),
       st.sampled_from(["", "E", "F"]))
def test_recovered_means_contiguous_up_to_the_top(since: int, top: int, read: list[int],
                                                  epoch: str) -> None:
    """Whenever recover() says recovered, the client has every offset from since+1 to the top."""
    outcome = recover(StreamPosition(since, epoch), StreamPosition(top, "E"), pubs(*read))
    if outcome.recovered:
        assert epoch in ("", "E")
        assert [p.offset for p in outcome.publications] == list(range(since + 1, top + 1))
    else:
        assert outcome.publications == ()
