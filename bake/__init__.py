"""Offline side of Portrait4D: track, train, render and bake into .p4d (needs torch)."""
