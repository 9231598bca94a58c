"""Windows over long texts and stitching at seams."""

import itertools

import numpy as np
import pytest

from nerserve.decoding import decode_entities
from nerserve.windows import owner_of_tokens, plan_windows, stitch_scores


@pytest.mark.parametrize(
    "n,size,overlap", [(1, 10, 2), (10, 10, 2), (11, 10, 2), (100, 10, 4), (1000, 510, 128), (37, 8, 0)]
)
def test_windows_cover_every_token_with_the_overlap(n, size, overlap):
    windows = plan_windows(n, size, overlap)
    assert windows[0][0] == 0 and windows[-1][1] == n
    assert all(end - start == min(size, n) for start, end in windows)
    for (s1, e1), (s2, _) in itertools.pairwise(windows):
        assert s1 < s2 <= e1 - overlap  # consecutive windows overlap by at least `overlap`
    covered = np.zeros(n, dtype=bool)
    for start, end in windows:
        covered[start:end] = True
    assert covered.all()


def test_no_tokens_no_windows_and_bad_arguments_are_refused():
    assert plan_windows(0, 10, 2) == []
    with pytest.raises(ValueError):
        plan_windows(5, 10, 10)


def test_each_token_is_owned_by_the_window_where_it_has_most_context():
    windows = plan_windows(20, 10, 4)  # [(0,10), (6,16), (10,20)]
    owner = owner_of_tokens(20, windows)
    assert windows == [(0, 10), (6, 16), (10, 20)]
    assert owner.tolist() == [0] * 8 + [1] * 5 + [2] * 7
    for t, w in enumerate(owner):
        start, end = windows[w]
        best = max(min(t - s, e - 1 - t) for s, e in windows if s <= t < e)
        assert min(t - start, end - 1 - t) == best


def test_stitching_takes_each_token_from_its_owner():
    n, labels = 30, 3
    windows = plan_windows(n, 12, 4)
    per_window = [np.full((end - start, labels), float(i), dtype=np.float32) for i, (start, end) in enumerate(windows)]
    stitched = stitch_scores(n, windows, per_window)
    assert stitched[:, 0].tolist() == owner_of_tokens(n, windows).astype(float).tolist()


def test_an_entity_across_a_seam_is_decoded_once_and_whole():
    id2label = {0: "O", 1: "B-ORG", 2: "I-ORG"}
    n = 24
    labels = [0] * n
    labels[9:14] = [1, 2, 2, 2, 2]  # crosses the seam region of windows of 12 with overlap 4
    full = np.full((n, 3), 0.05, dtype=np.float32)
    full[np.arange(n), labels] = 0.9
    windows = plan_windows(n, 12, 4)
    assert len(windows) > 1 and any(s < 9 < e < 14 for s, e in windows)
    per_window = [full[start:end].copy() for start, end in windows]
    # Windows disagree away from their own region: poison what a window sees within 2 tokens of its edges.
    for (start, end), scores in zip(windows, per_window, strict=True):
        if start > 0:
            scores[:2] = [0.9, 0.05, 0.05]
        if end < n:
            scores[-2:] = [0.9, 0.05, 0.05]
    stitched = stitch_scores(n, windows, per_window)
    offsets = [(2 * i, 2 * i + 1) for i in range(n)]
    text = " ".join("x" * n)[: 2 * n - 1]
    entities = decode_entities(text, offsets, [False] * n, stitched, id2label)
    assert [(e["label"], e["start"], e["end"]) for e in entities] == [("ORG", 18, 27)]
