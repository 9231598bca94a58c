"""oneDNN's prepacked GEMM for the fp32 Linear layers of a CPU model (``handler.linear_kernels: onednn``).

torch's own fp32 ``nn.Linear`` calls MKL's sgemm on x86 builds, which on some CPUs does not use their widest vector
units; ``prepack_linears`` puts a ``PrepackedLinear`` (oneDNN's GEMM on the weight reordered once into its blocked
layout) in place of each one, after ``onednn_linear_unavailable`` has checked that the kernel runs here.
Measurements: docs/PERFORMANCE.md, "Linear kernels". Imports torch: the worker's, never the gateway's.
"""

from __future__ import annotations

import os

import torch
from torch import nn

# oneDNN makes a primitive (JIT-compiled code) per input shape, and the packed forward's token count varies with
# every pass. oneDNN's primitive cache and ideep's LRU cache keep 1,024 each by default: a worker's RSS grew from
# ~440 to ~810 MB over 300 passes of 199 distinct shapes (in-process, malloc_trim'd). At 16 each it stayed at 443 MB
# and the passes ran no slower (10.5 s against 11.0; making a primitive costs far less than the GEMM).
ONEDNN_CACHE_CAPACITY = 16
ONEDNN_CACHE_ENVIRONMENT = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")


def bound_onednn_caches() -> None:
    """Bound oneDNN's and ideep's primitive caches (unless the environment already sets them). Both read their
    variable once, at the first oneDNN primitive of the process, so this runs before any."""
    for name in ONEDNN_CACHE_ENVIRONMENT:
        os.environ.setdefault(name, str(ONEDNN_CACHE_CAPACITY))


def onednn_linear_unavailable() -> str | None:
    """Why ``prepack_linears`` cannot run in this process (None: it can).

    Besides asking torch, it runs one small product through the kernel and compares it with ``nn.functional.linear``,
    so a build or CPU where the op exists but fails (or answers wrongly) keeps torch's own Linear. The caches are
    bounded first (``bound_onednn_caches``)."""
    bound_onednn_caches()
    if not torch.backends.mkldnn.is_available():
        return "this torch build has no oneDNN"
    ops = torch.ops.mkldnn
    if not (hasattr(ops, "_reorder_linear_weight") and hasattr(ops, "_linear_pointwise")):
        return "this torch build lacks oneDNN's prepacked linear ops"
    generator = torch.Generator().manual_seed(0)
    x, weight, bias = (torch.randn(*shape, generator=generator) for shape in ((3, 8), (5, 8), (5,)))
    try:
        with torch.inference_mode():
            got = ops._linear_pointwise(x, ops._reorder_linear_weight(weight, None), bias, "none", [], "")
    except RuntimeError as err:
        return f"oneDNN's linear failed here ({str(err).splitlines()[0][:120]})"
    if not torch.allclose(got, nn.functional.linear(x, weight, bias), atol=1e-5, rtol=1e-5):
        return "oneDNN's linear disagreed with torch's on a test product"
    return None


class PrepackedLinear(nn.Module):
    """An fp32 ``nn.Linear`` run as oneDNN's GEMM on a weight reordered once, at load, into oneDNN's blocked layout.

    torch's own fp32 Linear calls MKL's sgemm on x86 builds, which on some CPUs does not use their widest vector
    units (an AMD EPYC with AVX-512: 81 GFLOP/s for a 256x384x1536 product on one thread, oneDNN 182-198); the
    same arithmetic in fp32, so logits agree within float rounding. docs/PERFORMANCE.md, "Linear kernels". CPU and
    inference only: the reordered weight is an opaque oneDNN tensor, not a Parameter (no gradient, no state_dict).
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.packed_weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), None)
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).contiguous()
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(flat, self.packed_weight, self.bias, "none", [], "")
        return out.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def prepack_linears(model: nn.Module) -> int:
    """Replace every fp32 CPU ``nn.Linear`` of ``model`` (exactly that type: int8 Linears keep their own kernels)
    with a ``PrepackedLinear`` of the same weights, in place; returns how many. Call ``onednn_linear_unavailable``
    first. The replaced modules' weights are dropped, so the model holds one copy of them."""
    bound_onednn_caches()
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and child.weight.device.type == "cpu" and child.weight.dtype == torch.float32:
                setattr(parent, name, PrepackedLinear(child))
                replaced += 1
    return replaced
