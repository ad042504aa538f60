"""memory.tune_gc: start-up's survivors frozen out of the collector, start-up's garbage freed first, the
stream's thresholds set."""
import gc
import weakref

from replicator.stream import memory


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_tune_gc_freezes_the_living_frees_the_garbage_and_sets_the_thresholds():
    before = gc.get_threshold()
    kept = _Node()
    dropped = _Node()
    gone = weakref.ref(dropped)
    del dropped
    gc.disable()  # no collection between here and the call decides the outcome for us
    try:
        assert gone() is not None  # a cycle outlives its last outside reference
        memory.tune_gc((12_345, 7, 3))
        assert gone() is None  # start-up's garbage was collected, not frozen with the rest
        assert gc.get_threshold() == (12_345, 7, 3)
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())  # frozen objects are outside every generation
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
        gc.enable()
    assert any(o is kept for o in gc.get_objects())

