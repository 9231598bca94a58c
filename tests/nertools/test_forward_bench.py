"""nertools.forward_bench: its workloads, the interleaving of the arms and the ratios (speed is never asserted)."""

from __future__ import annotations

import pytest

from nertools.forward_bench import (
    MIXED_SENTENCES_PER_DOCUMENT,
    interleaved,
    markdown_table,
    result_row,
    workload_batches,
)

SENTENCES = [f"sentence {i}" for i in range(40)]
DOCUMENTS = ["document A", "document B"]


def test_workloads_keep_arrival_order_in_batches_of_their_size():
    assert workload_batches("short9", SENTENCES, DOCUMENTS) == [SENTENCES[i : i + 9] for i in range(0, 40, 9)]
    assert [len(batch) for batch in workload_batches("short32", SENTENCES, DOCUMENTS)] == [32, 8]
    assert workload_batches("short1", SENTENCES, DOCUMENTS) == [[sentence] for sentence in SENTENCES]
    mixed = workload_batches("mixed", SENTENCES, DOCUMENTS)
    assert [batch[0] for batch in mixed] == DOCUMENTS
    assert mixed[1][1:] == SENTENCES[MIXED_SENTENCES_PER_DOCUMENT : 2 * MIXED_SENTENCES_PER_DOCUMENT]
    assert workload_batches("long", SENTENCES, DOCUMENTS) == [["document A"], ["document B"]]
    with pytest.raises(ValueError, match="unknown workload 'huge'"):
        workload_batches("huge", SENTENCES, DOCUMENTS)


def test_the_arms_alternate_and_each_gets_its_median():
    calls: list[str] = []
    durations = {"padded": iter([5, 1, 3]), "packed": iter([2, 9, 2])}
    now = 0.0

    def clock() -> float:  # the arms' own durations, not the machine's
        return now

    def arm(name: str):
        def run() -> None:
            nonlocal now
            calls.append(name)
            now += next(durations[name])

        return run

    medians = interleaved({"padded": arm("padded"), "packed": arm("packed")}, 3, clock)
    assert calls == ["padded", "packed"] * 3
    assert medians == {"padded": 3, "packed": 2}


def test_a_row_gives_padded_over_packed_and_the_table_has_its_columns():
    row = result_row("none", 2, "short9", {"rows": 9}, {"padded": 0.3, "packed": 0.2}, 1.23456e-5)
    assert row == {
        "quantization": "none",
        "threads": 2,
        "workload": "short9",
        "rows": 9,
        "padded_ms": 300.0,
        "packed_ms": 200.0,
        "padded_over_packed": 1.5,
        "max_logit_diff": 1.2e-05,
    }
    table = markdown_table([row]).splitlines()
    assert table[0] == "| " + " | ".join(row) + " |"
    assert table[2].startswith("| none | 2 | short9 | 9 | 300.0 | 200.0 | 1.5 |")
