"""Data in: the tracked dataset (``dataset``), other projects' dataset layouts read on the fly
(``foreign``) and ``load.load_dataset``, which reads any of them."""
