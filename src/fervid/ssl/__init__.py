"""Stage-1 semi-supervised pieces: threshold policies and debiased pseudo-labelling."""
