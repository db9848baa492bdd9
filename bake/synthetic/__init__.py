"""The synthetic animatable head: exact ground truth and the embedded demo subject.

``SyntheticField`` renders it behind the field interface; ``bake synth`` (``bake.cli.synth``) writes a
selfie-like capture of it (video, dataset, checkpoint).
"""

from bake.synthetic.field import SyntheticField
from bake.synthetic.head import EXPRESSION_NAMES, HeadConfig

__all__ = ["SyntheticField", "EXPRESSION_NAMES", "HeadConfig"]
