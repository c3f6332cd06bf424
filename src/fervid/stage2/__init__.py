"""Stage 2: the Temporal Encoder over per-frame features.

- :mod:`~fervid.stage2.extract`: the frame encoder run once over every frame, into a store;
- :mod:`~fervid.stage2.store`: the memory-mapped feature store (``FeatureStore``);
- :mod:`~fervid.stage2.windows`: the training windows and where their frames come from;
- :mod:`~fervid.stage2.step`: one training step (``Stage2Step``) and its loss;
- :mod:`~fervid.stage2.train`: the stage-2 loop (``train_stage2``) over windows of a store;
- :mod:`~fervid.stage2.finetune`: fine-tuning the frame encoder inside stage 2;
- :mod:`~fervid.stage2.compare`: frame model, moving average and Temporal Encoder side by side;
- :mod:`~fervid.stage2.two_stage`: both stages in one run folder (the demo, ablation runs).
"""
