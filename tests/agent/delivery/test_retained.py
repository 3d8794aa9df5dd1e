"""What the publisher keeps retained on the broker: the reference profile once per boot and
at each switch, the other topics on every connection (``RetainedMessages``)."""

from __future__ import annotations

import threading

from edgewatch.agent.delivery.retained import RetainedMessages

REF = "edgewatch/v1/f1/cam-1/reference"
STATUS = "edgewatch/v1/f1/cam-1/update_status"


def test_the_reference_goes_out_until_acknowledged_then_only_at_a_switch() -> None:
    kept = RetainedMessages(REF, b"ref-1")
    assert kept.on_connect() == [(REF, b"ref-1", True)]
    assert kept.due() == []
    assert kept.on_connect() == [(REF, b"ref-1", True)]  # not acknowledged: again
    kept.published(7)
    assert not kept.acknowledged(8)  # another message's
    assert kept.acknowledged(7)
    assert kept.on_connect() == []  # the broker has it: not at every reconnection

    kept.set_reference(b"ref-2")  # a switch, from another thread
    assert not kept.reference_sent.is_set()
    assert kept.due() == [(REF, b"ref-2", True)]
    assert kept.due() == []
    assert kept.on_connect() == [(REF, b"ref-2", True)]  # unacknowledged when reconnecting


def test_a_switch_made_while_connecting_goes_out_once_connected() -> None:
    kept = RetainedMessages(REF, b"ref-1")
    assert kept.on_connect() == [(REF, b"ref-1", True)]
    kept.published(3)
    kept.set_reference(b"ref-2")
    assert kept.acknowledged(3)  # the broker acknowledges ref-1, published on connecting
    assert kept.due() == [(REF, b"ref-2", True)]
    assert not kept.reference_sent.is_set()  # ref-1's acknowledgement is not ref-2's


def test_other_topics_keep_their_latest_payload_and_go_out_on_every_connection() -> None:
    kept = RetainedMessages(REF)
    assert kept.on_connect() == []  # no reference: none is published
    kept.set(STATUS, b"receiving")
    kept.set(STATUS, b"staged")
    assert kept.due() == [(STATUS, b"staged", False)]
    assert kept.due() == []
    assert kept.on_connect() == [(STATUS, b"staged", False)]
    assert kept.due() == []  # on_connect published it: nothing is due twice


def test_messages_handed_over_from_many_threads_are_all_published() -> None:
    kept = RetainedMessages(REF)
    topics = [f"t/{i}" for i in range(64)]
    workers = [threading.Thread(target=kept.set, args=(t, t.encode())) for t in topics]
    for w in workers:
        w.start()
    published: list[tuple[str, bytes, bool]] = []
    while any(w.is_alive() for w in workers):
        published += kept.due()
    for w in workers:
        w.join()
    published += kept.due()
    assert sorted(t for t, _, _ in published) == sorted(topics)
