"""The capture-anchored bake: tiles whose pixels come from the captured frames, reprojected
through the field's geometry, with the field's render only where no frame sees the head."""
