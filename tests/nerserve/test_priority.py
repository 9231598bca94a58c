"""The document lane's CPU priority: every thread of the process, those started before and after, gets the lower
priority; nothing ever raises one. Run in a child process so the test runner keeps its own priority."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from nerserve.priority import MAX_NICENESS, lower_cpu_priority
from nerserve.settings import HandlerSettings

CHILD = textwrap.dedent(
    """
    import json, os, sys, threading
    from nerserve.priority import lower_cpu_priority

    stop = threading.Event()
    tids = []
    def idle():
        tids.append(threading.get_native_id())
        stop.wait()
    before = threading.Thread(target=idle); before.start()
    while not tids:
        pass
    returned = lower_cpu_priority(int(sys.argv[1]))
    after = threading.Thread(target=idle); after.start()
    while len(tids) < 2:
        pass
    nice = [os.getpriority(os.PRIO_PROCESS, tid) for tid in (threading.get_native_id(), *tids)]
    stop.set()
    print(json.dumps({"returned": returned, "main": nice[0], "before": nice[1], "after": nice[2]}))
    """
)


def child(increment: int, start_nice: int = 0) -> dict[str, int]:
    import json

    done = subprocess.run(
        ["nice", "-n", str(start_nice), sys.executable, "-c", CHILD, str(increment)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return dict(json.loads(done.stdout))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_every_thread_started_before_or_after_gets_the_lower_priority():
    assert child(10) == {"returned": 10, "main": 10, "before": 10, "after": 10}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_the_increment_adds_to_the_nice_value_the_process_started_with_and_stops_at_19():
    assert child(10, start_nice=5)["before"] == 15
    assert child(10, start_nice=15) == {"returned": MAX_NICENESS, "main": 19, "before": 19, "after": 19}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_zero_changes_nothing():
    assert child(0, start_nice=3) == {"returned": 3, "main": 3, "before": 3, "after": 3}


def test_a_negative_increment_is_refused():
    with pytest.raises(ValueError, match="lowering a priority only"):
        lower_cpu_priority(-1)


def test_the_setting_defaults_to_nice_10_and_is_bounded():
    assert HandlerSettings().document_lane_niceness == 10
    assert HandlerSettings.from_mapping({"document_lane_niceness": 0}).document_lane_niceness == 0
    for bad in (-1, 20):
        with pytest.raises(ValueError, match="document_lane_niceness must be between 0 and 19"):
            HandlerSettings.from_mapping({"document_lane_niceness": bad})
    with pytest.raises(ValueError, match="must be an integer"):
        HandlerSettings.from_mapping({"document_lane_niceness": "10"})
