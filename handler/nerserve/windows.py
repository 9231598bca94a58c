"""Split a long token sequence into overlapping windows, and stitch per-window scores back together.

Windows cover the word pieces of a text without special tokens; each window later gets [CLS]/[SEP]. Every token
is labelled by exactly one window, the one in which it sits farthest from an edge, so a token near a seam is
labelled with context on both sides. Entities are decoded once over the stitched sequence, so none is cut at a
seam and none is reported twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def plan_windows(n_tokens: int, window_size: int, overlap: int) -> list[tuple[int, int]]:
    """Half-open [start, end) token ranges covering 0..n_tokens, consecutive ones sharing >= ``overlap`` tokens.

    The last window is aligned to the end of the text, so no window is shorter than needed and the tail has as
    much left context as a full window gives.
    """
    if window_size < 1:
        raise ValueError(f"window_size must be >= 1, got {window_size}")
    if not 0 <= overlap < window_size:
        raise ValueError(f"overlap must be in [0, window_size), got {overlap}")
    if n_tokens <= 0:
        return []
    if n_tokens <= window_size:
        return [(0, n_tokens)]
    step = window_size - overlap
    starts = list(range(0, n_tokens - window_size, step))
    starts.append(n_tokens - window_size)
    return [(start, start + window_size) for start in starts]


def owner_of_tokens(n_tokens: int, windows: Sequence[tuple[int, int]]) -> np.ndarray:
    """For each token, the index of the window that labels it: the one where it has the most context.

    Context of token t in window [s, e) is min(t - s, e - 1 - t); ties go to the earlier window.
    """
    owner = np.full(n_tokens, -1, dtype=np.int64)
    best = np.full(n_tokens, -1, dtype=np.int64)
    for index, (start, end) in enumerate(windows):
        positions = np.arange(start, end)
        context = np.minimum(positions - start, end - 1 - positions)
        better = context > best[start:end]
        owner[start:end][better] = index
        best[start:end][better] = context[better]
    if n_tokens and (owner < 0).any():
        raise ValueError("windows do not cover every token")
    return owner


def stitch_scores(n_tokens: int, windows: Sequence[tuple[int, int]], window_scores: Sequence[np.ndarray]) -> np.ndarray:
    """Assemble one (n_tokens, num_labels) array from per-window arrays of shape (end - start, num_labels)."""
    if len(windows) != len(window_scores):
        raise ValueError(f"{len(windows)} windows but {len(window_scores)} score arrays")
    if len(windows) == 1:
        return window_scores[0]
    num_labels = window_scores[0].shape[-1] if window_scores else 0
    out = np.empty((n_tokens, num_labels), dtype=window_scores[0].dtype if window_scores else np.float32)
    owner = owner_of_tokens(n_tokens, windows)
    for index, (start, end) in enumerate(windows):
        mine = np.nonzero(owner[start:end] == index)[0]
        out[start + mine] = window_scores[index][mine]
    return out
