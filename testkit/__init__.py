"""Helpers for tests and benches: small valid .p4d files (``sample``) and the reader's mutation
fuzzer (``fuzz``). Not part of the installed package (pyproject ships bake, formats and player
only), so the runtime never depends on them; pytest finds this folder through ``pythonpath``,
bench scripts put the repo root on ``sys.path`` themselves."""
