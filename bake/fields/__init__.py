"""Fields: what a checkpoint loads into. ``base`` holds the interface the bake renders through and
the checkpoint envelope; ``registry.load_field`` loads either kind (the analytic head in
``bake.synthetic``, a trained NeRFBlendShape in ``bake.nerf``)."""
