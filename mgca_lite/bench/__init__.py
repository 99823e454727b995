"""Speed benchmarks (they print ratios; never timed tests) and the reference arithmetic they time.

- `synth`     `python -m mgca_lite bench synth`: SynthCXR rendering, samples/s on one core
- `losses`    `python -m mgca_lite bench losses`: our three losses against the reference's
- `pretrain`  `python -m mgca_lite bench pretrain`: the full MGCA step against the encoders alone
- `reference_transcription`  the reference implementation's loss arithmetic, written out with its
  costs and quirks

The reference transcription lives here, not in `mgca_lite.losses`, because it is not a loss to
build on: it is the baseline that `losses` and `pretrain` time, that the parity tests
(`tests/test_loss_reference.py`) hold against our losses, and that notebooks 03-05 import to show
where the two differ. `mgca_lite.losses` holds only the losses the model trains with.

Import from the modules: this package imports nothing, so a benchmark can set its thread counts
before numpy or torch load.
"""
