"""The declared field ranges of the option and threshold dataclasses (core.options.Bounded)."""

from __future__ import annotations

import pytest

from napari_xai.core.attribution._base import ExplainOptions
from napari_xai.core.audit.sanity import SanityThresholds
from napari_xai.core.limits import LimitError
from napari_xai.core.masks.folds import FoldOptions
from napari_xai.core.options import FeatureSpec, GridOptions, RunOptions


def test_messages_name_the_type_field_and_bound() -> None:
    with pytest.raises(ValueError, match=r"GridOptions\.overlap must be in \[0, 1\), not 1\.0"):
        GridOptions(overlap=1.0)
    with pytest.raises(ValueError, match=r"FeatureSpec\.mc_samples must be in \[0, 256\]"):
        FeatureSpec(mc_samples=257)
    with pytest.raises(ValueError, match=r"FoldOptions\.bins must be at least 1, not 0"):
        FoldOptions(bins=0)
    with pytest.raises(ValueError, match=r"SanityThresholds\.max_ssim must be in \[-1, 1\]"):
        SanityThresholds(max_ssim=1.5)
    with pytest.raises(ValueError, match=r"ExplainOptions\.n_steps must be a number"):
        ExplainOptions(n_steps="many")  # type: ignore[arg-type]


def test_limit_checks_and_none_fields() -> None:
    with pytest.raises(LimitError, match=r"RunOptions\.batch_size = 5000 exceeds the limit"):
        RunOptions(batch_size=5000)
    with pytest.raises(LimitError, match=r"GridOptions\.mpp"):
        GridOptions(mpp=0.0)
    assert RunOptions(num_workers=None).num_workers is None
    assert GridOptions(mpp=0.5, max_tiles=None).mpp == 0.5
    assert ExplainOptions(occlusion_window=None, batch_size=1).batch_size == 1
