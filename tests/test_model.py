"""model.py loads both checkpoint layouts without key renaming, and names the file and field when they disagree."""

import json
import shutil

import pytest
import torch

from model import BertTokenClassifier
from nerserve.checkpoint import CheckpointError
from tests.support.paths import DEMO_MODEL_DIR
from tests.support.tiny_models import LABELS


def test_hf_checkpoint_gives_the_same_logits_as_transformers(tiny_checkpoint):
    from transformers import BertForTokenClassification

    ours = BertTokenClassifier.from_checkpoint(tiny_checkpoint)
    reference = BertForTokenClassification.from_pretrained(tiny_checkpoint).eval()
    ids = torch.tensor([[2, 40, 41, 42, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    with torch.inference_mode():
        assert torch.allclose(ours(ids, mask), reference(input_ids=ids, attention_mask=mask).logits, atol=1e-5)
    assert ours.id2label == dict(enumerate(LABELS))
    assert not ours.training


def test_classic_checkpoint_with_a_deeper_head_loads(classic_checkpoint):
    model = BertTokenClassifier.from_checkpoint(classic_checkpoint)
    linear = [m for m in model.classifier.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(32, 100), (100, 50), (50, len(LABELS))]
    state = torch.load(classic_checkpoint / "pytorch_model.bin", weights_only=True)
    assert torch.equal(linear[1].weight, state["head.layers.1.weight"])
    assert model.id2label[3] == "B-PER"


def copy(src, tmp_path):
    return shutil.copytree(src, tmp_path / "ckpt")


def test_label_count_mismatch_names_the_files(classic_checkpoint, tmp_path):
    ckpt = copy(classic_checkpoint, tmp_path)
    (ckpt / "labels_file.txt").write_text("O\nB-X\n")
    with pytest.raises(
        CheckpointError, match=r"bert_for_token_classification_config.json: field 'num_labels'.*labels_file.txt"
    ):
        BertTokenClassifier.from_checkpoint(ckpt)


def test_head_shape_mismatch_names_the_field(tiny_checkpoint, tmp_path):
    ckpt = copy(tiny_checkpoint, tmp_path)
    config = json.loads((ckpt / "config.json").read_text())
    config["id2label"] = {"0": "O", "1": "B-X", "2": "I-X"}
    config.pop("label2id", None)
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"model.safetensors: head layer classifier.weight.*id2label"):
        BertTokenClassifier.from_checkpoint(ckpt)


def test_vocab_size_mismatch_is_reported(tiny_checkpoint, tmp_path):
    ckpt = copy(tiny_checkpoint, tmp_path)
    config = json.loads((ckpt / "config.json").read_text())
    config["vocab_size"] += 5
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        CheckpointError, match=r"model.safetensors: word embeddings have \d+ rows but the config's vocab_size"
    ):
        BertTokenClassifier.from_checkpoint(ckpt)


def test_missing_labels_and_unknown_layout_are_reported(tiny_checkpoint, tmp_path):
    ckpt = copy(tiny_checkpoint, tmp_path)
    config = json.loads((ckpt / "config.json").read_text())
    del config["id2label"]
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="config.json: field 'id2label' is missing"):
        BertTokenClassifier.from_checkpoint(ckpt)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        BertTokenClassifier.from_checkpoint(empty)


def with_head(classic_checkpoint, tmp_path, layers, sizes, weights_name="pytorch_model.bin"):
    """A copy of the classic checkpoint whose head is ``layers`` = [(key prefix, in, out)], saved in that order."""
    ckpt = copy(classic_checkpoint, tmp_path)
    state = torch.load(ckpt / "pytorch_model.bin", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    generator = torch.Generator().manual_seed(1)
    for name, n_in, n_out in layers:
        state[f"{name}.weight"] = torch.randn(n_out, n_in, generator=generator)
        state[f"{name}.bias"] = torch.randn(n_out, generator=generator)
    (ckpt / "pytorch_model.bin").unlink()
    if weights_name.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file(state, ckpt / weights_name)
    else:
        torch.save(state, ckpt / weights_name)
    head = json.loads((ckpt / "bert_for_token_classification_config.json").read_text())
    head["classification_layer_sizes"] = sizes
    (ckpt / "bert_for_token_classification_config.json").write_text(json.dumps(head))
    return ckpt, state


N_LABELS = len(LABELS)


@pytest.mark.parametrize(
    "layers, sizes, order, weights_name",
    [
        # Sorted by name (classifier < dense < hidden) the layers would not chain.
        (
            [("dense", 32, 100), ("hidden", 100, 50), ("classifier", 50, N_LABELS)],
            [100, 50],
            ["dense", "hidden", "classifier"],
            "pytorch_model.bin",
        ),
        # Equal shapes: sorted by name the first two would swap silently; the file's order decides.
        (
            [("z_first", 32, 32), ("a_second", 32, 32), ("z_out", 32, N_LABELS)],
            [32, 32],
            ["z_first", "a_second", "z_out"],
            "pytorch_model.bin",
        ),
        # safetensors keeps no saving order (it stores names sorted: layers.10 < layers.12 < layers.2).
        (
            [("head.layers.2", 32, 32), ("head.layers.10", 32, 32), ("head.layers.12", 32, N_LABELS)],
            [32, 32],
            ["head.layers.2", "head.layers.10", "head.layers.12"],
            "model.safetensors",
        ),
        # The shapes chain two ways (32->50->32->60->32 or 32->60->32->50->32): the config says which.
        (
            [("a", 32, 50), ("b", 50, 32), ("c", 32, 60), ("d", 60, 32), ("e", 32, N_LABELS)],
            [60, 32, 50, 32],
            ["c", "d", "a", "b", "e"],
            "pytorch_model.bin",
        ),
    ],
    ids=["names-out-of-order", "equal-shapes", "safetensors", "config-picks-the-chain"],
)
def test_classic_head_layers_are_chained_by_shape(classic_checkpoint, tmp_path, layers, sizes, order, weights_name):
    ckpt, state = with_head(classic_checkpoint, tmp_path, layers, sizes, weights_name)
    model = BertTokenClassifier.from_checkpoint(ckpt)
    ids = torch.tensor([[2, 40, 41, 42, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    with torch.inference_mode():
        x = model.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        for i, name in enumerate(order):
            x = torch.nn.functional.linear(x, state[f"{name}.weight"], state[f"{name}.bias"])
            if i < len(order) - 1:
                x = torch.relu(x)
        assert torch.allclose(model(ids, mask), x, atol=1e-5)


@pytest.mark.parametrize(
    "layers, sizes, message",
    [
        (
            [("dense", 32, 100), ("hidden", 60, 50), ("classifier", 50, N_LABELS)],
            [100, 50],
            r"pytorch_model.bin: the head's linear layers do not chain from the encoder's hidden size 32 .*"
            r"dense.weight 32->100, hidden.weight 60->50, classifier.weight 50->7",
        ),
        (
            [("a", 32, 50), ("b", 50, 32), ("c", 32, 60), ("d", 60, 32), ("e", 32, N_LABELS)],
            [40, 32, 60, 32],
            r"pytorch_model.bin: the head's linear layers chain in 2 ways and none is the config's "
            r"32->40->32->60->32->7 \(classification_layer_sizes, num_labels\): a.weight 32->50",
        ),
    ],
    ids=["broken", "ambiguous"],
)
def test_a_head_that_does_not_chain_names_the_file_and_shapes(classic_checkpoint, tmp_path, layers, sizes, message):
    ckpt, _ = with_head(classic_checkpoint, tmp_path, layers, sizes)
    with pytest.raises(CheckpointError, match=message):
        BertTokenClassifier.from_checkpoint(ckpt)


def test_a_blank_line_between_labels_is_refused(classic_checkpoint, tmp_path):
    ckpt = copy(classic_checkpoint, tmp_path)
    # Dropping the blank line would shift every later class id by one, with the label count still right.
    (ckpt / "labels_file.txt").write_text("\n".join(LABELS[:2] + [""] + LABELS[2:]) + "\n")
    with pytest.raises(CheckpointError, match="labels_file.txt: line 3 is blank"):
        BertTokenClassifier.from_checkpoint(ckpt)


def test_trailing_blank_lines_of_the_labels_file_are_ignored(classic_checkpoint, tmp_path):
    ckpt = copy(classic_checkpoint, tmp_path)
    (ckpt / "labels_file.txt").write_text("\r\n".join(LABELS) + "\r\n\r\n  \n")
    assert BertTokenClassifier.from_checkpoint(ckpt).id2label == dict(enumerate(LABELS))


def test_a_missing_classic_file_is_named(classic_checkpoint, tmp_path):
    ckpt = copy(classic_checkpoint, tmp_path)
    (ckpt / "labels_file.txt").unlink()
    with pytest.raises(CheckpointError, match=r"labels_file.txt is missing \(this layout needs bert_config.json"):
        BertTokenClassifier.from_checkpoint(ckpt)


def test_a_classic_checkpoint_beside_a_config_json_is_classic(classic_checkpoint, tmp_path):
    """The classic head config decides the layout, so labels come from labels_file.txt, as the gateway's legend."""
    ckpt = copy(classic_checkpoint, tmp_path)
    (ckpt / "config.json").write_text(json.dumps({"model_type": "bert", "id2label": {"0": "O", "1": "B-MISC"}}))
    model = BertTokenClassifier.from_checkpoint(ckpt)
    assert model.id2label == dict(enumerate(LABELS))
    assert len([m for m in model.classifier.modules() if isinstance(m, torch.nn.Linear)]) == 3


def test_an_unknown_head_activation_names_the_field(classic_checkpoint, tmp_path):
    ckpt = copy(classic_checkpoint, tmp_path)
    head = json.loads((ckpt / "bert_for_token_classification_config.json").read_text())
    (ckpt / "bert_for_token_classification_config.json").write_text(json.dumps({**head, "activation": "swish"}))
    with pytest.raises(CheckpointError, match=r"bert_for_token_classification_config.json: field 'activation'"):
        BertTokenClassifier.from_checkpoint(ckpt)


# --- the padding-free forward: same logits as transformers, on the packed tokens of every row ---------------


@pytest.fixture(scope="module")
def checkpoint_512(tmp_path_factory):
    """The tiny model with BERT's 512 positions, so rows can be as long as the server's windows."""
    from tests.support.tiny_models import build_hf_checkpoint

    return build_hf_checkpoint(tmp_path_factory.mktemp("tiny_512"), max_positions=512)


DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
]


def random_rows(seed, vocab_size, max_rows=40, max_length=512):
    """Padded (ids, mask) of 1..max_rows rows of random lengths 1..max_length, and the lengths."""
    generator = torch.Generator().manual_seed(seed)
    rows = int(torch.randint(1, max_rows + 1, (1,), generator=generator))
    lengths = torch.randint(1, max_length + 1, (rows,), generator=generator).tolist()
    ids = torch.randint(5, vocab_size, (rows, max(lengths)), generator=generator)
    mask = (torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]).long()
    return ids * mask, mask, lengths


def packed_logits(model, ids, mask, lengths):
    """``model.forward_packed`` on the rows of (ids, mask) end to end."""
    return model.forward_packed(ids[mask.bool()], lengths)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(6))
def test_packed_forward_gives_the_logits_of_transformers(checkpoint_512, seed, device):
    from transformers import BertForTokenClassification

    ours = BertTokenClassifier.from_checkpoint(checkpoint_512).to(device)
    reference = BertForTokenClassification.from_pretrained(checkpoint_512).eval().to(device)
    ids, mask, lengths = random_rows(seed, ours.config.vocab_size)
    if seed % 2:  # the handler's passes are sorted longest first (fewest attention runs); any order is right
        order = sorted(range(len(lengths)), key=lambda r: -lengths[r])
        ids, mask, lengths = ids[order], mask[order], [lengths[r] for r in order]
    ids, mask = ids.to(device), mask.to(device)
    with torch.inference_mode():
        expected = reference(input_ids=ids, attention_mask=mask).logits[mask.bool()]
        packed = packed_logits(ours, ids, mask, lengths)
    assert packed.shape == (sum(lengths), len(LABELS))
    assert (packed - expected).abs().max().item() < 1e-4


def test_packed_forward_runs_a_deeper_classic_head(classic_checkpoint):
    model = BertTokenClassifier.from_checkpoint(classic_checkpoint)
    ids, mask, lengths = random_rows(7, model.config.vocab_size, max_length=64)
    with torch.inference_mode():
        assert torch.allclose(packed_logits(model, ids, mask, lengths), model(ids, mask)[mask.bool()], atol=1e-5)


def test_packed_forward_calls_the_int8_modules(checkpoint_512):
    from model import quantize_int8_dynamic

    fp32 = BertTokenClassifier.from_checkpoint(checkpoint_512)
    int8 = quantize_int8_dynamic(fp32)
    # Rows of one length: the padded forward sees exactly the packed tokens, so int8 activations quantize alike.
    ids, mask = torch.randint(5, fp32.config.vocab_size, (3, 50)), torch.ones(3, 50, dtype=torch.long)
    with torch.inference_mode():
        packed = packed_logits(int8, ids, mask, [50, 50, 50])
        assert (packed - int8(ids, mask)[mask.bool()]).abs().max().item() < 1e-4
        assert (packed - packed_logits(fp32, ids, mask, [50, 50, 50])).abs().max().item() > 1e-3


@pytest.mark.parametrize(
    "change, reason",
    [({"is_decoder": True}, "a decoder"), ({"position_embedding_type": "relative_key"}, "position_embedding_type")],
)
def test_a_config_the_packed_forward_does_not_cover_runs_padded(tiny_checkpoint, change, reason):
    from transformers import BertConfig

    loaded = BertTokenClassifier.from_checkpoint(tiny_checkpoint)
    assert loaded.packed_unsupported is None
    config = BertConfig.from_dict({**loaded.config.to_dict(), **change})
    model = BertTokenClassifier(config, loaded.id2label)
    model.load_state_dict(loaded.state_dict())
    model.eval()
    assert reason in (model.packed_unsupported or "")
    ids, mask, lengths = random_rows(3, config.vocab_size, max_rows=6, max_length=40)
    with torch.inference_mode():
        assert torch.allclose(packed_logits(model, ids, mask, lengths), model(ids, mask)[mask.bool()], atol=1e-5)
        if config.is_decoder:  # causal attention: the packed (bidirectional) computation would differ
            assert not torch.allclose(packed_logits(loaded, ids, mask, lengths), model(ids, mask)[mask.bool()])


def test_packed_rows_must_cover_the_tokens(tiny_checkpoint):
    model = BertTokenClassifier.from_checkpoint(tiny_checkpoint)
    with pytest.raises(ValueError, match="5 packed tokens but row lengths"):
        model.forward_packed(torch.tensor([2, 40, 41, 42, 3]), [3, 3])
    with pytest.raises(ValueError, match="each >= 1"):
        model.forward_packed(torch.tensor([2, 40, 41, 42, 3]), [5, 0])


@pytest.mark.demo
@pytest.mark.skipif(not (DEMO_MODEL_DIR / "model.safetensors").is_file(), reason="no demo model")
@pytest.mark.parametrize("seed", range(3))
def test_packed_forward_gives_the_logits_of_transformers_on_the_demo_model(seed):
    from transformers import BertForTokenClassification

    ours = BertTokenClassifier.from_checkpoint(DEMO_MODEL_DIR)
    reference = BertForTokenClassification.from_pretrained(DEMO_MODEL_DIR).eval()
    ids, mask, lengths = random_rows(seed, ours.config.vocab_size, max_rows=12 if seed else 40)
    with torch.inference_mode():
        expected = reference(input_ids=ids, attention_mask=mask).logits[mask.bool()]
        assert (packed_logits(ours, ids, mask, lengths) - expected).abs().max().item() < 1e-4


def test_prepacked_linears_give_the_logits_of_transformers(checkpoint_512):
    """oneDNN's GEMM on reordered weights in place of every nn.Linear: both forwards keep transformers' logits."""
    from transformers import BertForTokenClassification

    from nerserve.linear_kernels import PrepackedLinear, onednn_linear_unavailable, prepack_linears

    assert onednn_linear_unavailable() is None  # torch==2.13.0's CPU wheel, as pinned, has the ops
    ours = BertTokenClassifier.from_checkpoint(checkpoint_512)
    linears = sum(type(m) is torch.nn.Linear for m in ours.modules())
    assert prepack_linears(ours) == linears > 0
    assert not any(type(m) is torch.nn.Linear for m in ours.modules())
    assert sum(isinstance(m, PrepackedLinear) for m in ours.modules()) == linears
    reference = BertForTokenClassification.from_pretrained(checkpoint_512).eval()
    for seed in range(3):
        ids, mask, lengths = random_rows(seed, ours.config.vocab_size, max_rows=12)
        with torch.inference_mode():
            expected = reference(input_ids=ids, attention_mask=mask).logits
            assert (ours(ids, mask) - expected).abs().max().item() < 1e-4
            assert (packed_logits(ours, ids, mask, lengths) - expected[mask.bool()]).abs().max().item() < 1e-4


def test_prepacked_linears_cover_a_deeper_classic_head_and_leave_int8_alone(classic_checkpoint, checkpoint_512):
    from model import quantize_int8_dynamic
    from nerserve.linear_kernels import prepack_linears

    model = BertTokenClassifier.from_checkpoint(classic_checkpoint)
    ids, mask, lengths = random_rows(5, model.config.vocab_size, max_length=64)
    with torch.inference_mode():
        before = model(ids, mask)
        assert prepack_linears(model) > 6  # the encoder's and each of the head's layers
        assert (model(ids, mask) - before).abs().max().item() < 1e-4
    int8 = quantize_int8_dynamic(BertTokenClassifier.from_checkpoint(checkpoint_512))
    assert prepack_linears(int8) == 0


def test_onednn_linear_unavailable_says_why(monkeypatch):
    from nerserve import linear_kernels

    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert linear_kernels.onednn_linear_unavailable() == "this torch build has no oneDNN"
    monkeypatch.undo()

    def failing(*args):
        raise RuntimeError("could not create a primitive\nmore")

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", failing)
    assert linear_kernels.onednn_linear_unavailable() == "oneDNN's linear failed here (could not create a primitive)"
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda x, w, b, *rest: torch.zeros(3, 5))
    assert linear_kernels.onednn_linear_unavailable() == "oneDNN's linear disagreed with torch's on a test product"


# Run in a fresh interpreter: oneDNN and ideep read their cache sizes once, at the process's first primitive.
CACHE_GROWTH_SCRIPT = """
import ctypes, torch
from transformers import BertConfig
from model import BertTokenClassifier
from nerserve.linear_kernels import onednn_linear_unavailable, prepack_linears
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
config = BertConfig(vocab_size=100, hidden_size=384, num_hidden_layers=1, num_attention_heads=6,
                    intermediate_size=1536)
model = BertTokenClassifier(config, {0: "O", 1: "B-PER"}).eval()
assert onednn_linear_unavailable() is None
prepack_linears(model)
torch.set_num_threads(1)
with torch.inference_mode():
    model.forward_packed(torch.ones(5, dtype=torch.long), [5])
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = rss_mb()
    for total in range(20, 620, 4):  # 150 token counts: a primitive per shape
        model.forward_packed(torch.ones(total, dtype=torch.long), [total // 2, total - total // 2])
ctypes.CDLL("libc.so.6").malloc_trim(0)
print(rss_mb() - before)
"""


def test_onednn_primitive_caches_stay_bounded_over_many_pass_shapes():
    """Every packed pass has its own token count, so oneDNN makes primitives per shape; the default caches (1,024
    each) kept ~300 MB of them on this model, the bounded ones (nerserve.linear_kernels.ONEDNN_CACHE_CAPACITY) a few
    MB."""
    import os
    import subprocess
    import sys

    from tests.support.paths import HANDLER_DIR, ROOT

    def growth_mb(**environment: str) -> float:
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{HANDLER_DIR}", **environment}
        for name in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
            if name not in environment:
                env.pop(name, None)
        done = subprocess.run(
            [sys.executable, "-c", CACHE_GROWTH_SCRIPT], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return float(done.stdout.strip().splitlines()[-1])

    unbounded = growth_mb(ONEDNN_PRIMITIVE_CACHE_CAPACITY="1024", LRU_CACHE_CAPACITY="1024")
    bounded = growth_mb()
    assert unbounded > 100, unbounded  # what the bound is for: the measurement can see it
    assert bounded < 40, bounded
