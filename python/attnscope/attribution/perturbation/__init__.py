"""Perturbation attribution: one engine (:mod:`.engine`: features, replacement, batched forwards with KV reuse),
one class per method."""

# The method classes load through the catalog (attnscope.attribution.<Class>, or catalog.get(name).load()): a new
# method is its own file plus its catalog entry, with no list here to edit.
