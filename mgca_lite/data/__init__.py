"""Data: SynthCXR (the built-in paired dataset), manifests for real datasets, loaders.

Import from the modules (this package imports nothing, so `mgca_lite.data.synth` stays light):

- `synth`       FINDINGS, SynthSample, make_sample, report_corpus — the public generator
- `tasks`       derived tasks, fixed splits and 1 / 10 / 100 % label subsets
- `manifest`    the on-disk format (export_synth, read_manifest)
- `datasets`    PairedDataset, TaskDataset (SynthCXR on the fly or a manifest), build_image_cache
- `transforms`  normalisation and crops;  `collate`  PairCollator, collate_task
"""
