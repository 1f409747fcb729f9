"""The hit queue: bounded, FIFO, drops counted per probe even from many threads."""

from __future__ import annotations

import threading

from sensor.agent.buffer import HitQueue
from sensor.probes import Hit


def hit(probe_id: str, n: int = 0) -> Hit:
    return Hit(probe_id, "sig", "snapshot", "m:f@return", 0.0, hit_id=str(n))


def test_queue_keeps_order_and_takes_in_batches() -> None:
    queue = HitQueue(10)
    for n in range(5):
        queue.put(hit("p", n))
    assert [h.hit_id for h in queue.take(3)] == ["0", "1", "2"]
    assert [h.hit_id for h in queue.take(10)] == ["3", "4"]
    assert queue.take(10) == []


def test_full_queue_drops_new_hits_and_counts_them_per_probe() -> None:
    queue = HitQueue(2)
    for probe_id in ("a", "a", "a", "b"):
        queue.put(hit(probe_id))
    assert len(queue) == 2
    assert queue.drops() == {"a": 1, "b": 1}
    assert queue.dropped == 2


def test_concurrent_puts_lose_no_count() -> None:
    queue = HitQueue(100)
    per_thread, threads = 5000, 4

    def produce() -> None:
        for n in range(per_thread):
            queue.put(hit("p", n))

    workers = [threading.Thread(target=produce) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    kept = len(queue)
    assert kept >= 100
    assert kept + queue.dropped == per_thread * threads


def test_reset_after_fork_forgets_the_parents_hits() -> None:
    queue = HitQueue(1)
    queue.put(hit("p"))
    queue.put(hit("p"))
    queue.reset_after_fork()
    assert len(queue) == 0
    assert queue.drops() == {}
