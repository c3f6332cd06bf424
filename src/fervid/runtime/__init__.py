"""What every stage runs on, out of the pipeline's way.

- :mod:`~fervid.runtime.io`: atomic writes (a leaf: any layer may use it);
- :mod:`~fervid.runtime.registry`: the one name -> constructor registry;
- :mod:`~fervid.runtime.dist`: torch.distributed helpers (torchrun, gloo / nccl);
- :mod:`~fervid.runtime.checkpoint`: safetensors + JSON model files, resume state;
- :mod:`~fervid.runtime.run_dir`: a run folder (config, logs, checkpoints);
- :mod:`~fervid.runtime.training`: device, precision, optimizer, schedule, resume state.
"""
