"""Miniature instances of the real architectures, with seeded random weights, written in each
upstream library's own on-disk layout so that the real loaders read them.

They serve two users: the test suite, and the `cpu-miniature` profile on machines that can get
no real weights. They are stand-ins and are always named as such; they produce no meaningful
picture or score.
"""
