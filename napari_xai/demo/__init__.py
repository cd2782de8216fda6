"""Demo data and test fixtures: synthetic slides and the planted-shortcut cohort.

Nothing in :mod:`napari_xai.core` imports this package (an import-linter contract):
it generates inputs for the sample data, ``napari-xai demo`` / ``synthetic``, the
scripts, tests and benchmarks.

- :mod:`napari_xai.demo.synthetic`: synthetic H&E-looking patches and pyramidal
  slides with known ground truth (tissue, tumour, artefact masks).
- :mod:`napari_xai.demo.shortcut`: the planted-shortcut cohort (a marker glyph on one
  class) and the tiny-CNN trainer used as the audit's acceptance test.
"""
