"""What relighting needs from a bake (format 1.2): surface normals per tile (``normals``) and the
capture's light fitted over the tiles (``fit``); ``add`` puts both into an existing file."""
