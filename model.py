"""BERT token classification for serving: one module, two checkpoint layouts, no key renaming by hand.

Layouts read by ``BertTokenClassifier.from_checkpoint(directory)``:

* **Hugging Face** (``save_pretrained`` of ``BertForTokenClassification``): ``config.json`` with ``id2label``,
  ``model.safetensors`` or ``pytorch_model.bin``. Keys ``bert.*`` and ``classifier.{weight,bias}`` load as they are.
* **Classic** (a BERT encoder with a deeper head): ``bert_config.json`` (Google BERT config fields),
  ``bert_for_token_classification_config.json`` (``num_labels``, ``classification_layer_sizes`` such as
  ``[100, 50]``, optional ``dropout`` and ``activation``), ``labels_file.txt`` (one label per line, line number =
  class id; trailing blank lines are ignored, a blank line in between is an error) and a weights file
  (``*.safetensors``, ``*.bin``, ``*.pt`` or ``*.pth``). The head's linear layers are put in order by shape,
  whatever their names: the first takes the encoder's hidden size, each next one the previous one's outputs, and
  layers of equal shape keep the order of the weights file. The chain is then checked against the config.

Layout detection and label files are ``nerserve.checkpoint``'s, shared with the gateway. Every loading error is a
``CheckpointError`` (a ``ValueError``) whose message names the file and field at fault.

This module sits at the repository root because the product's layout puts it there; the archive ships it beside
the handler (``--model-file``). TorchServe's one-class rule concerns the handler module it imports, and
``BaseHandler._load_pickled_model``, which this project's handler never calls: it builds the model with
``BertTokenClassifier.from_checkpoint``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from transformers import BertConfig, BertModel

from nerserve.checkpoint import (
    CLASSIC_BERT_CONFIG,
    CLASSIC_HEAD_CONFIG,
    CLASSIC_LABELS,
    HF_CONFIG,
    CheckpointError,
    Layout,
    detect_layout,
    labels_from_hf_config,
    read_json,
    read_labels_file,
)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
PREFERRED_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
ENCODER_PREFIXES = ("bert.", "model.bert.", "module.bert.")


class BertTokenClassifier(nn.Module):
    """BERT encoder + token classification head (one linear layer, or an MLP for the classic layout).

    With a single linear head the parameter names equal ``BertForTokenClassification``'s, so Hugging Face
    checkpoints load unchanged and the forward pass is the same computation.
    """

    def __init__(
        self,
        config: BertConfig,
        id2label: dict[int, str],
        hidden_layer_sizes: list[int] | tuple[int, ...] = (),
        head_dropout: float | None = None,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if len(id2label) < 1:
            raise ValueError("id2label must name at least one label")
        self.config = config
        self.id2label = {int(k): str(v) for k, v in id2label.items()}
        self.bert = BertModel(config, add_pooling_layer=False)
        dropout = config.hidden_dropout_prob if head_dropout is None else head_dropout
        self.dropout = nn.Dropout(dropout)
        sizes = [config.hidden_size, *hidden_layer_sizes, len(self.id2label)]
        if len(sizes) == 2:
            self.classifier: nn.Module = nn.Linear(sizes[0], sizes[1])
        else:
            if activation not in ACTIVATIONS:
                raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
            layers: list[nn.Module] = []
            for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
                layers.append(nn.Linear(n_in, n_out))
                if i < len(sizes) - 2:
                    layers.extend([ACTIVATIONS[activation](), nn.Dropout(dropout)])
            self.classifier = nn.Sequential(*layers)

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of shape (batch, sequence, num_labels)."""
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits: torch.Tensor = self.classifier(self.dropout(hidden))
        return logits

    @property
    def packed_unsupported(self) -> str | None:
        """Why ``forward_packed`` cannot compute this config without padding (None: it can)."""
        config = self.config
        position_type = getattr(config, "position_embedding_type", "absolute")
        if position_type != "absolute":
            return f"position_embedding_type {position_type!r} (only 'absolute' is packed)"
        if config.is_decoder or config.add_cross_attention:
            return "a decoder (causal or cross attention)"
        return None

    def forward_packed(self, input_ids: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
        """Logits of shape (total_tokens, num_labels) for rows packed end to end, without any padding.

        ``input_ids`` (total_tokens,) holds every row's tokens one row after another, row ``r`` being
        ``lengths[r]`` tokens (each at least one). The per-token work (embeddings with each row's own positions
        0.., token type 0, every Linear, LayerNorm, the activation, the head) runs once on the
        (total_tokens, hidden) packed tokens; only attention sees rows: each run of consecutive rows of one length
        is a zero-copy (rows, heads, length, head_size) view of the packed q/k/v, attended without a mask, so
        attention has no padding either. Rows sorted by length (as the handler's passes are) make the fewest runs.

        It calls this module's own submodules (``self.bert.embeddings``, and of each
        ``self.bert.encoder.layer[i]`` the query/key/value Linears, ``attention.output``, ``intermediate`` and
        ``output``, then ``self.classifier``), so both paths use the same weights, and the int8 Linears that
        ``quantize_int8_dynamic`` puts in place of each ``nn.Linear`` run as they are (activations are then
        quantized over the packed tokens only, not over padding). Device-agnostic (torch ops only).

        Covered: BERT encoders with absolute position embeddings; ``hidden_act`` and ``layer_norm_eps`` are the
        modules' own. A config it does not cover (``packed_unsupported``: another ``position_embedding_type``, a
        decoder) runs the padded ``forward`` on the rows padded from the packed input and returns its logits packed
        the same way: the same answer, without the saving.
        """
        device = input_ids.device
        total, rows = int(input_ids.shape[0]), len(lengths)
        if sum(lengths) != total or min(lengths, default=1) < 1:
            raise ValueError(f"{total} packed tokens but row lengths {list(lengths)[:8]}... (each >= 1)")
        row_lengths = torch.tensor(lengths, device=device)
        row_starts = torch.cumsum(row_lengths, 0) - row_lengths
        positions = torch.arange(total, device=device) - torch.repeat_interleave(
            row_starts, row_lengths, output_size=total
        )
        if self.packed_unsupported is not None:
            width = max(lengths)
            row_of_token = torch.repeat_interleave(torch.arange(rows, device=device), row_lengths, output_size=total)
            place = row_of_token * width + positions  # each packed token's place in the (rows, width) padding
            padded_ids = input_ids.new_zeros(rows * width).index_copy_(0, place, input_ids)
            mask = input_ids.new_zeros(rows * width).index_fill_(0, place, 1)
            padded = self(padded_ids.view(rows, width), mask.view(rows, width))
            return padded.reshape(rows * width, -1)[place]

        runs = []  # (first token, rows, length) of each run of consecutive rows of one length
        first = 0
        for length, run in itertools.groupby(lengths):
            count = len(list(run))
            runs.append((first, count, length))
            first += count * length
        hidden = self.bert.embeddings(input_ids=input_ids[None], position_ids=positions[None])[0]
        layers = cast(Sequence[Any], self.bert.encoder.layer)  # BertLayer modules, whose attributes are untyped
        for layer in layers:
            attention = layer.attention.self
            heads, size = attention.num_attention_heads, attention.attention_head_size
            q, k, v = attention.query(hidden), attention.key(hidden), attention.value(hidden)
            contexts = []
            for first, count, length in runs:
                tokens = slice(first, first + count * length)
                q_run, k_run, v_run = (x[tokens].view(count, length, heads, size).transpose(1, 2) for x in (q, k, v))
                attended = nn.functional.scaled_dot_product_attention(q_run, k_run, v_run, scale=attention.scaling)
                contexts.append(attended.transpose(1, 2).reshape(count * length, heads * size))
            context = contexts[0] if len(contexts) == 1 else torch.cat(contexts)
            output = layer.attention.output(context, hidden)
            hidden = layer.output(layer.intermediate(output), output)
        logits: torch.Tensor = self.classifier(self.dropout(hidden))
        return logits

    @classmethod
    def from_checkpoint(cls, directory: str | Path) -> BertTokenClassifier:
        """Build the module from a checkpoint directory in either layout and load its weights (eval mode)."""
        directory = Path(directory)
        weights_path = model_files(directory)[-1]
        model = _build_classic(directory) if detect_layout(directory) is Layout.CLASSIC else _build_hf(directory)
        state = _normalize_state_dict(_read_state_dict(weights_path), model, weights_path)
        missing, unexpected = model.load_state_dict(state, strict=False)
        # position_ids is a non-persistent buffer in current transformers; older checkpoints still carry it.
        unexpected = [k for k in unexpected if not k.endswith("position_ids")]
        if missing or unexpected:
            raise CheckpointError(
                f"{weights_path.name}: weights do not match the model built from the config "
                f"(missing: {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"unexpected: {unexpected[:5]}{'...' if len(unexpected) > 5 else ''})"
            )
        return model.eval()


def quantize_int8_dynamic(model: BertTokenClassifier) -> nn.Module:
    """Int8 weights (per output channel) for every Linear layer, activations quantized per batch; CPU only.

    torch.ao.quantization warns that it is deprecated; it is still the fastest int8 path on x86 CPUs in this
    torch version (fbgemm kernels), and the choice is measured in docs/PERFORMANCE.md.
    """
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        quantized: nn.Module = quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
    return quantized


def model_files(directory: Path) -> list[Path]:
    """The files ``from_checkpoint`` reads: the layout's config (and labels) files, then the weights file.

    A missing one is an error naming it. A model archive must hold these; the tokenizer's files are the handler's.
    """
    directory = Path(directory)
    classic = detect_layout(directory) is Layout.CLASSIC
    names = (CLASSIC_BERT_CONFIG, CLASSIC_HEAD_CONFIG, CLASSIC_LABELS) if classic else (HF_CONFIG,)
    for name in names:
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory}: {name} is missing (this layout needs {', '.join(names)})")
    return [directory / name for name in names] + [find_weights(directory)]


def find_weights(directory: Path) -> Path:
    for name in PREFERRED_WEIGHTS:
        if (directory / name).is_file():
            return directory / name
    candidates = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if len(candidates) != 1:
        raise CheckpointError(
            f"{directory}: expected one weights file ({', '.join(PREFERRED_WEIGHTS)} or one *"
            f"{'/*'.join(WEIGHT_SUFFIXES)}), found {[p.name for p in candidates]}"
        )
    return candidates[0]


def _build_hf(directory: Path) -> BertTokenClassifier:
    raw = read_json(directory / HF_CONFIG)
    if raw.get("model_type", "bert") != "bert":
        raise CheckpointError(f"{HF_CONFIG}: model_type is {raw.get('model_type')!r}, this server runs 'bert'")
    labels = labels_from_hf_config(raw)
    config = BertConfig.from_pretrained(directory)
    return BertTokenClassifier(config, dict(enumerate(labels)), head_dropout=raw.get("classifier_dropout"))


def _build_classic(directory: Path) -> BertTokenClassifier:
    config = BertConfig.from_dict(read_json(directory / CLASSIC_BERT_CONFIG))
    head = read_json(directory / CLASSIC_HEAD_CONFIG)
    labels = read_labels_file(directory / CLASSIC_LABELS)
    num_labels = head.get("num_labels", len(labels))
    if num_labels != len(labels):
        raise CheckpointError(
            f"{CLASSIC_HEAD_CONFIG}: field 'num_labels' is {num_labels} but {CLASSIC_LABELS} has {len(labels)} labels"
        )
    sizes = head.get("classification_layer_sizes", [])
    if not isinstance(sizes, list) or not all(isinstance(s, int) and s > 0 for s in sizes):
        raise CheckpointError(f"{CLASSIC_HEAD_CONFIG}: field 'classification_layer_sizes' must be a list of sizes")
    activation = head.get("activation", "relu")
    if activation not in ACTIVATIONS:
        raise CheckpointError(
            f"{CLASSIC_HEAD_CONFIG}: field 'activation' must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
        )
    return BertTokenClassifier(
        config,
        dict(enumerate(labels)),
        hidden_layer_sizes=sizes,
        head_dropout=head.get("dropout"),
        activation=activation,
    )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        # safetensors stores tensors sorted by dtype and name, not in the order they were saved; natural name order
        # (layers.2 before layers.10) is the closest to the module's order, which equal-shaped head layers rely on.
        return dict(sorted(load_file(str(path)).items(), key=lambda item: _natural_key(item[0])))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path.name}: expected a state_dict, found {type(state).__name__}")
    return cast(dict[str, torch.Tensor], state)


def _natural_key(name: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _normalize_state_dict(
    state: dict[str, torch.Tensor], model: BertTokenClassifier, path: Path
) -> dict[str, torch.Tensor]:
    """Map a checkpoint's keys onto this module's: encoder keys by prefix, head linear layers chained by shape."""
    encoder: dict[str, torch.Tensor] = {}
    head: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        for prefix in ENCODER_PREFIXES:
            if key.startswith(prefix):
                encoder["bert." + key[len(prefix) :]] = tensor
                break
        else:
            if key.startswith(("embeddings.", "encoder.")):  # a bare BertModel state_dict
                encoder["bert." + key] = tensor
            elif not key.startswith(("pooler.", "bert.pooler.", "cls.")):  # pooler / MLM head: unused here
                head[key.removeprefix("module.")] = tensor
    encoder = {k: v for k, v in encoder.items() if not k.startswith("bert.pooler.")}

    targets = [(name, module) for name, module in model.classifier.named_modules() if isinstance(module, nn.Linear)]
    weight_keys = [k for k, v in head.items() if k.endswith("weight") and v.dim() == 2]
    if len(weight_keys) != len(targets):
        raise CheckpointError(
            f"{path.name}: the head has {len(weight_keys)} linear layers {weight_keys}, the config describes "
            f"{len(targets)} (hidden size -> classification_layer_sizes -> num_labels)"
        )
    expected = [_shape2(module.weight) for _, module in targets]
    chain = _chain_head_layers({k: _shape2(head[k]) for k in weight_keys}, expected, model.config.hidden_size, path)
    mapped = dict(encoder)
    for key, (name, module) in zip(chain, targets, strict=True):
        prefix = "classifier" + (f".{name}" if name else "")
        weight = head[key]
        if tuple(weight.shape) != tuple(module.weight.shape):
            field = "id2label / num_labels" if module is targets[-1][1] else "classification_layer_sizes"
            raise CheckpointError(
                f"{path.name}: head layer {key} has shape {tuple(weight.shape)}, the config ({field}) "
                f"expects {tuple(module.weight.shape)}"
            )
        mapped[prefix + ".weight"] = weight
        bias_key = key[: -len("weight")] + "bias"
        if bias_key in head:
            mapped[prefix + ".bias"] = head[bias_key]

    embeddings = encoder.get("bert.embeddings.word_embeddings.weight")
    if embeddings is not None and embeddings.shape[0] != model.config.vocab_size:
        raise CheckpointError(
            f"{path.name}: word embeddings have {embeddings.shape[0]} rows but the config's vocab_size is "
            f"{model.config.vocab_size}"
        )
    return mapped


def _shape2(weight: torch.Tensor) -> tuple[int, int]:
    """(out_features, in_features) of a linear layer's 2-D weight."""
    rows, columns = weight.shape
    return int(rows), int(columns)


def _chain_head_layers(
    shapes: dict[str, tuple[int, int]], expected: list[tuple[int, int]], hidden_size: int, path: Path
) -> list[str]:
    """The head's weight keys in the order they compute, found from shapes alone (names say nothing about order).

    ``shapes`` maps each weight key, in state-dict order, to its (out_features, in_features); ``expected`` lists the
    shapes the config describes. The first layer takes ``hidden_size`` features, each next one the previous one's
    outputs, and every layer is used once. Layers of equal shape keep the state-dict order. If the shapes chain in
    several ways, the one the config describes is taken; if they chain in one way only, it is returned even when
    it disagrees with the config, so that the caller names the layer and the config field at fault.
    """
    chains: list[list[str]] = []

    def extend(chain: list[str], remaining: list[str], width: int) -> None:
        if not remaining:
            chains.append(chain)
            return
        tried: set[tuple[int, int]] = set()
        for key in remaining:
            # Only the first remaining layer of a shape is tried: that is the state-dict tie-breaker.
            if shapes[key][1] == width and shapes[key] not in tried:
                tried.add(shapes[key])
                extend([*chain, key], [k for k in remaining if k != key], shapes[key][0])

    extend([], list(shapes), hidden_size)
    layers = ", ".join(f"{key} {shape[1]}->{shape[0]}" for key, shape in shapes.items())
    if not chains:
        raise CheckpointError(
            f"{path.name}: the head's linear layers do not chain from the encoder's hidden size {hidden_size} "
            f"(each must take the previous one's outputs): {layers}"
        )
    for chain in chains:
        if [shapes[key] for key in chain] == expected:
            return chain
    if len(chains) == 1:
        return chains[0]
    widths = "->".join(str(n) for n in [hidden_size, *(out for out, _ in expected)])
    raise CheckpointError(
        f"{path.name}: the head's linear layers chain in {len(chains)} ways and none is the config's {widths} "
        f"(classification_layer_sizes, num_labels): {layers}"
    )
