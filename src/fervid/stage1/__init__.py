"""Stage 1: semi-supervised pretraining of the frame encoder.

- :mod:`~fervid.stage1.thresholds`: who keeps a pseudo-label (fixed, FlexMatch / DTM, FreeMatch);
- :mod:`~fervid.stage1.debias`: DebiasPL's running class prior and debiased pseudo-labels;
- :mod:`~fervid.stage1.teachers`: who pseudo-labels the weak view (the model, its EMA, a file);
- :mod:`~fervid.stage1.objective`: labelled CE + the masked unlabelled CE on the strong view;
- :mod:`~fervid.stage1.data`: class-uniform labelled batches, unlabelled weak/strong batches;
- :mod:`~fervid.stage1.train`: the stage-1 loop (``train_stage1``).
"""
