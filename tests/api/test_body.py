"""The body buffer: whatever the chunks and whether the Content-Length is known, the body is
what was sent, and its capacity never runs ahead of what arrived by more than GROWTH-fold."""

from hypothesis import given, settings
from hypothesis import strategies as st

from service.api.body import GROWN_BY_APPENDING, GROWTH, Buffer

SIZES = st.sampled_from([0, 1, 1000, GROWN_BY_APPENDING - 1, GROWN_BY_APPENDING + 1, 5 << 20])


@settings(max_examples=30, deadline=None)
@given(SIZES, st.lists(st.integers(1, 1 << 20), min_size=1, max_size=8), st.booleans())
def test_the_body_is_what_was_sent(total: int, cuts: list[int], declared: bool) -> None:
    data = bytes(range(256)) * (total // 256) + bytes(total % 256)
    buffer = Buffer(len(data) if declared else None)
    position, index = 0, 0
    while position < len(data):
        part = data[position : position + cuts[index % len(cuts)]]
        buffer.add(part)
        position, index = position + len(part), index + 1
        assert buffer.filled == position
        assert len(buffer.data) <= max(GROWN_BY_APPENDING, GROWTH * position)
    assert buffer.whole() == data
