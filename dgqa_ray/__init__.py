"""dgqa_ray: DGQA (distortion-guided domain adaptation for blind IQA) on Ray."""

from dgqa_ray import console as _console

_console.install()
