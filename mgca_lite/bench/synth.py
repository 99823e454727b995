"""Speed benchmark of SynthCXR rendering (a ratio to report, never a timed test).

    python -m mgca_lite.bench.synth --n 1000 --image-size 128
    SynthCXR render: 812 samples/s at 128 px on 1 thread (goal >= 500)

Rendering is numpy only and runs on one core; the benchmark pins BLAS / OpenMP to one thread
when it is started as a program, and reports CPU time too, because wall time on a shared machine
also counts other people's processes.
"""

from __future__ import annotations

import argparse
import os
import time

GOAL = 500  # samples/s at 128 px on one thread: enough to render pretraining data on the fly


def benchmark_synth(n: int = 1000, image_size: int = 128, seed: int = 0) -> dict:
    """Render n samples (after one warm-up that builds the per-size caches).

    Returns {"samples_per_s", "cpu_samples_per_s", "n", "image_size", "ms_per_sample"}.
    """
    from mgca_lite.data.synth import make_sample

    make_sample(0, seed, image_size)  # builds the anatomy / noise caches for this size
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(1, n + 1):
        make_sample(i, seed, image_size)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"samples_per_s": n / wall, "cpu_samples_per_s": n / max(cpu, 1e-9), "n": n,
            "image_size": image_size, "ms_per_sample": 1000 * wall / n}


def main(argv: list[str] | None = None) -> dict:
    """Command line entry: prints one summary line and returns the result dict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=128)
    args = parser.parse_args(argv)
    r = benchmark_synth(args.n, args.image_size)
    print(f"SynthCXR render: {r['samples_per_s']:.0f} samples/s at {r['image_size']} px on 1 thread "
          f"(CPU time: {r['cpu_samples_per_s']:.0f}/s; goal >= {GOAL} at 128 px)")
    return r


if __name__ == "__main__":
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # only effective before numpy loads: hence the lazy import
    main()
