"""``bake track``: a face video -> a dataset (pose, expression, mask per frame).

Modules: ``model`` (landmark model file, canonical face, mediapipe wrapper), ``video`` (frames),
``pose`` (PnP, per-video face shape, smoothing), ``crop`` (head-following virtual camera),
``mask`` (GrabCut head+hair+neck), ``expression`` (neutral offset), ``expression_map`` (between
expression spaces), ``pipeline`` (``track_video``). The command line is ``bake.cli.track``. See
docs/tracking.md.
"""
