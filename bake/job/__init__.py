"""The bake job: a field -> one .p4d. ``config`` (BakeConfig), ``views`` (the yaw x pitch grid),
``keyframes`` (the expression sequence at the bake rate), ``graph`` (Video Textures transitions and
pose groups), ``run`` (renders every tile into the resumable writer)."""
