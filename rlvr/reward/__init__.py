"""Learned rewards: a Bradley–Terry reward model (`rlvr rm train`), its saved format and scoring.

- `rlvr.reward.loss`: the pairwise loss as a pure function.
- `rlvr.reward.model`: the on-disk format of a reward model, loading it, scoring texts with it.
- `rlvr.reward.train`: the `rlvr rm train` loop; `rlvr.reward.synthetic`: a learnable preference set.

Nothing is imported here, so that importing one module does not load torch or transformers.
"""
