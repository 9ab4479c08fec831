"""Trustworthy evaluation: one fixed set of folds, a hidden holdout, and submission checks.

`split` decides which training rows are withheld and the fold of every other
row; `staging` writes that once per run into the run directory (so a resumed
run reuses it) and says what each node's `./input` holds instead of the
originals; `scoring` computes the card's metric with scikit-learn in
aide-tui's own process; `submission_check` compares a submission with the
test file; `holdout` re-runs a node's script on the withheld rows.
"""
