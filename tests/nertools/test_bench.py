"""The benchmark's own logic: percentiles, ratios, result schema, table, and that its in-process rows run
(speed itself is never asserted)."""

import asyncio
import math
import time

import numpy as np
import pytest

from nertools.bench import (
    RESULT_KEYS,
    SENTENCE_MAX_CHARS,
    TORCH_LINEAR_CEILING,
    add_ratios,
    bench_handler,
    bench_raw_ceiling,
    build_workload,
    ceiling_batches,
    ceiling_ratios,
    cpu_per_request,
    drained,
    failed_texts,
    handler_f1,
    inference_of,
    instances_bodies,
    latency_mix,
    latency_rows,
    listening_process,
    load_handler,
    markdown_table,
    padded_batch,
    percentile,
    process_role,
    result_row,
    short_workload,
    single_forward_latency,
    with_reference,
)


@pytest.mark.parametrize("q", [0, 25, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy(q):
    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_edges():
    assert math.isnan(percentile([], 50))
    assert percentile([4.0], 99) == 4.0
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_rows_have_the_schema_and_ratios_use_the_baseline():
    rows = [
        result_row("hf_pipeline_bs32", "in-process", 100, 2.0),
        result_row("torchserve_rest", "served", 100, 0.5, [10.0, 20.0, 30.0, 40.0], concurrency=32, errors=1),
    ]
    add_ratios(rows)
    assert all(tuple(r) == RESULT_KEYS for r in rows)
    assert rows[0]["texts_per_s"] == 50.0 and rows[0]["vs_baseline"] == 1.0
    assert rows[1]["texts_per_s"] == 200.0 and rows[1]["vs_baseline"] == 4.0
    assert rows[1]["p50_ms"] == 25.0 and rows[1]["p99_ms"] == pytest.approx(39.7)
    table = markdown_table(rows)
    assert "| torchserve_rest | 32 | 200.0 | 4.00x | 25.0 |" in table
    assert table.count("\n") == 3


def test_ratios_without_a_baseline_stay_empty():
    rows = add_ratios([result_row("x", "served", 10, 1.0)])
    assert rows[0]["vs_baseline"] is None


def test_clients_draining_one_queue_share_its_items_in_order_until_it_is_empty():
    queue: asyncio.Queue[int] = asyncio.Queue()
    for item in range(5):
        queue.put_nowait(item)
    first, second = drained(queue), drained(queue)
    assert [next(first), next(second), next(first)] == [0, 1, 2]
    assert list(second) == [3, 4] and list(first) == [] and queue.empty()


def test_a_padded_batch_pads_to_its_longest_row_and_masks_the_padding():
    ids, mask = padded_batch([np.array([5, 6]), np.array([7, 8, 9]), np.array([4])], pad_id=0)
    assert ids.tolist() == [[5, 6, 0], [7, 8, 9], [4, 0, 0]]
    assert mask.tolist() == [[1, 1, 0], [1, 1, 1], [1, 0, 0]]


def test_the_in_process_rows_run_on_the_handlers_data_path(tiny_checkpoint):
    """The rows that drive the handler directly (preprocess's forward passes, handle()) follow its current API."""
    handler = load_handler(tiny_checkpoint)
    texts = ["Angela Merkel met Tim Cook in Berlin.", "john smith flew to paris", "x " * 600]
    sentences = [f"{text} {i}" for i in range(40) for text in texts[:2]]
    batches = ceiling_batches(handler, [*sentences, texts[2]], batch_size=32)
    rows = [length for _, mask in batches for length in mask.sum(axis=1).tolist()]
    # Sorted across the workload, at most 32 rows a batch, and the long text's windows never pad a sentence.
    assert rows == sorted(rows, reverse=True) and len(rows) > len(sentences) + 1
    assert all(len(mask) <= 32 and mask.sum() * 2 > mask.size for _, mask in batches)
    for row in (bench_raw_ceiling(handler, texts, batch_size=2), bench_handler(handler, texts, batch_size=2)):
        assert tuple(row) == RESULT_KEYS and row["texts"] == len(texts) and row["errors"] == 0
    assert len(single_forward_latency(handler, threads=1, runs=3)) == 3


def test_the_after_idle_forward_sleeps_before_every_pass(tiny_checkpoint, monkeypatch):
    handler = load_handler(tiny_checkpoint)
    starts: list[float] = []
    forward = handler.inference
    monkeypatch.setattr(handler, "inference", lambda batch: (starts.append(time.perf_counter()), forward(batch))[1])
    assert len(single_forward_latency(handler, threads=1, runs=4, idle_s=0.05)) == 4
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    assert len(starts) == 9 and min(gaps) >= 0.05  # 5 unrecorded warm-up passes, then the 4 measured


def test_the_workload_and_the_accuracy_row_use_the_demo_model_package(tiny_checkpoint):
    texts = build_workload(seed=7, sentences=5, documents=1)
    assert len(texts) == 6 and sum("\n\n" in text for text in texts) == 1
    assert 0.0 <= handler_f1(load_handler(tiny_checkpoint)) <= 1.0


def test_the_latency_mix_puts_one_document_of_the_asked_length_in_every_n_requests():
    mix = latency_mix(seed=3, requests=60, every=20, document_chars=5000)
    kinds = [kind for kind, _ in mix]
    assert [i for i, kind in enumerate(kinds) if kind == "document"] == [19, 39, 59]
    documents = [text for kind, text in mix if kind == "document"]
    assert all(4900 <= len(text) <= 5000 and "\n\n" in text for text in documents)
    assert all(len(text) < 400 for kind, text in mix if kind == "short")
    assert mix == latency_mix(seed=3, requests=60, every=20, document_chars=5000)  # reproducible


def test_latency_rows_give_percentiles_per_kind_and_the_short_tail_ratio():
    rows = latency_rows({"short": [10.0] * 98 + [50.0, 90.0], "document": [400.0]}, {"document": 1}, 2.0)
    assert rows["kinds"]["short"] == {"requests": 100, "errors": 0, "p50_ms": 10.0, "p95_ms": 10.0, "p99_ms": 50.4}
    assert rows["kinds"]["document"]["errors"] == 1 and rows["kinds"]["document"]["p50_ms"] == 400.0
    assert rows["short_p99_over_p50"] == 5.04 and rows["seconds"] == 2.0


def test_the_short_workload_is_distinct_sentences_without_documents():
    texts = short_workload(seed=5, count=300)
    assert len(texts) == len(set(texts)) == 300
    assert not any("\n" in text for text in texts) and max(len(text) for text in texts) < SENTENCE_MAX_CHARS
    assert texts == short_workload(seed=5, count=300)


@pytest.mark.parametrize(
    "cmdline, role",
    [
        ("java -Dmodel_server_home=x -cp .:/ts/* org.pytorch.serve.ModelServer", "frontend"),
        ("python3 /ts/model_service_worker.py --sock-type unix --sock-name /tmp/.ts.sock.9000", "workers"),
        ("/work/.venv/bin/python -m gateway", "gateway"),
        ("/usr/bin/python3 scripts/bench.py", None),
    ],
)
def test_processes_are_told_apart_by_their_command_line(cmdline, role):
    assert process_role(cmdline) == role


def test_cpu_per_request_is_each_parts_core_ms_over_the_row():
    before = {"frontend": 10.0, "workers": 100.0, "gateway": 1.0}
    after = {"frontend": 10.5, "workers": 103.0, "gateway": 1.0}
    assert cpu_per_request(before, after, client_seconds=0.2, requests=500) == {
        "client_core_ms": 0.4,
        "frontend_core_ms": 1.0,
        "workers_core_ms": 6.0,
        "gateway_core_ms": 0.0,
    }


def test_the_measured_processes_are_the_ones_listening_on_the_urls_given():
    import os

    from tests.support.json_server import json_server

    assert inference_of("http://127.0.0.1:8080/predictions/ner_model") == "http://127.0.0.1:8080"
    with json_server(lambda path: (200, {})) as url:
        assert listening_process(url).pid == os.getpid()
    assert listening_process(url) is None  # nothing listens there any more


def test_the_mix_is_read_against_the_short_texts_alone():
    mixed = latency_rows({"short": [10.0] * 98 + [60.0, 60.0], "document": [400.0]}, {}, 3.0)
    reference = latency_rows({"short": [20.0] * 98 + [40.0, 40.0]}, {}, 1.5)
    result = with_reference(mixed, reference)
    assert result["short_p99_over_p50"] == 6.0  # the mix's own p50 fell: few short texts in flight
    assert result["short_p99_over_short_only_p50"] == 3.0
    assert result["short_p99_over_short_only_p99"] == 1.5
    assert result["short_only"]["short"]["p50_ms"] == 20.0 and result["short_only_seconds"] == 1.5
    assert result["kinds"] == mixed["kinds"]


def test_without_short_texts_there_is_no_ratio_to_read():
    mixed = latency_rows({"document": [400.0]}, {}, 3.0)
    result = with_reference(mixed, latency_rows({}, {}, 0.0))
    assert "short_p99_over_short_only_p50" not in result and result["short_p99_over_p50"] is None


def test_bulk_bodies_hold_the_asked_number_of_texts_in_order():
    texts = [f"t{i}" for i in range(70)]
    bodies = instances_bodies(texts, 32)
    assert [len(b["instances"]) for b in bodies] == [32, 32, 6]
    assert [t for b in bodies for t in b["instances"]] == texts
    with pytest.raises(ValueError):
        instances_bodies(texts, 0)


def test_failed_texts_count_per_text_errors_inside_a_200_answer():
    body = {"instances": ["a", "b", "c"]}
    ok = {"predictions": [{"entities": []}, {"code": 413, "type": "PayloadTooLarge", "message": "x"}, {"entities": []}]}
    assert failed_texts(200, ok, body) == 1
    assert failed_texts(200, {"predictions": [{"entities": []}]}, body) == 2  # missing answers fail too
    assert failed_texts(503, None, body) == 3
    assert failed_texts(200, None, {"text": "a"}) == 0 and failed_texts(500, None, {"text": "a"}) == 1


def test_every_served_row_is_read_against_the_raw_ceiling():
    rows = [
        result_row("raw_forward_ceiling", "in-process", 100, 1.0),
        result_row("torchserve_rest", "served", 80, 1.0, [1.0], 32),
        result_row("torchserve_rest_bulk", "served", 120, 1.0, [1.0], 4),
        result_row("our_handler_bs32", "in-process", 90, 1.0),
        result_row(TORCH_LINEAR_CEILING, "in-process", 50, 1.0),
    ]
    assert ceiling_ratios(rows) == {"torchserve_rest c32": 0.8, "torchserve_rest_bulk c4": 1.2}
    assert ceiling_ratios(rows, TORCH_LINEAR_CEILING) == {"torchserve_rest c32": 1.6, "torchserve_rest_bulk c4": 2.4}


def test_the_latency_mix_sends_each_kind_where_it_belongs_with_the_key():
    """bench_latency_mix against real socket servers: documents to the document URL, short texts to the other,
    the Authorization header on every request, latencies per kind, a 503 counted as an error."""
    import asyncio

    from nertools.bench import bench_latency_mix

    seen: dict[str, list[bytes]] = {"short": [], "documents": []}

    def server(name: str, status: bytes):
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = next(
                        int(v.split(b":")[1]) for v in head.split(b"\r\n") if v.lower().startswith(b"content-length")
                    )
                    seen[name].append(head + await reader.readexactly(length))
                    writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\n{}")
                    await writer.drain()
            except asyncio.IncompleteReadError:
                writer.close()

        return handle

    async def run() -> dict:
        short = await asyncio.start_server(server("short", b"200 OK"), "127.0.0.1", 0)
        documents = await asyncio.start_server(server("documents", b"503 Service Unavailable"), "127.0.0.1", 0)
        try:
            mix = [("short", "Hi Rome"), ("document", "A long one."), ("short", "Oslo"), ("short", "Bern")]
            return await bench_latency_mix(
                f"http://127.0.0.1:{short.sockets[0].getsockname()[1]}/predictions/ner_model",
                mix,
                clients=2,
                token="id.secret",
                document_url=f"http://127.0.0.1:{documents.sockets[0].getsockname()[1]}/predictions/docs",
            )
        finally:
            short.close()
            documents.close()

    result = asyncio.run(run())
    assert result["kinds"]["short"]["requests"] == 3 and result["kinds"]["short"]["errors"] == 0
    assert result["kinds"]["document"] == {**result["kinds"]["document"], "requests": 1, "errors": 1}
    assert len(seen["short"]) == 4 and len(seen["documents"]) == 1  # the warm-up request goes to the short URL
    assert all(b"\r\nAuthorization: Bearer id.secret\r\n" in request for request in seen["short"] + seen["documents"])
    assert seen["documents"][0].startswith(b"POST /predictions/docs HTTP/1.1\r\n")
    assert seen["documents"][0].endswith(b'{"text": "A long one."}')
