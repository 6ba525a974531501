"""The embedded default: what ``make demo`` trains on when no dataset is given.

- ``photos``: the photos the installed packages ship (scikit-image), cut into reference tiles.
- ``dead_leaves``: procedural dead-leaves references (content that no photo shares).
- ``proxy_scores``: MS-SSIM against the pristine tile, the quality proxy the pools are labelled
  with (no subjective scores exist for synthesized images).
- ``pools``: the classifier, source and target pools built from those tiles
  (``build_embedded_pools``), reused when their settings match.
- ``heldout_target``: a check target from other photos, degraded by other libraries.
"""
