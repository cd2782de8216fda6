"""Explore a cohort in the model's own feature space.

One algorithm per module:

* :mod:`.features` — pooled features of one layer captured during scoring
  (``features.zarr`` in the result folder, rows aligned with ``tiles.parquet``);
* :mod:`.ood` — where the model does not know: distance to the training
  features (Mahalanobis), energy of the logits, MC-dropout uncertainty;
* :mod:`.reduce` — PCA, UMAP and t-SNE embeddings, fitted on a sample;
* :mod:`.cluster` — k-means / HDBSCAN clusters with per-cluster summaries;
* :mod:`.cohort` — features and tiles of many result folders as one table;
* :mod:`.report` — the embedding, clusters and an HTML summary for a cohort.

Nothing here imports torch at module level except :mod:`.features` and
:mod:`.ood` (used only while scoring).
"""
