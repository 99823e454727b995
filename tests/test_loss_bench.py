"""The loss benchmark runs (tiny shapes, one repeat): a smoke test, not a timing test."""

from mgca_lite.bench.losses import benchmark_losses, main


def test_benchmark_runs_and_prints_the_ratio(capsys):
    small = dict(batch=4, words=6, patches=5, dim=8, prototypes=7, threads=1, repeats=1,
                 warmup=0)
    r = benchmark_losses(**small, groups=2)
    assert r["ours_s"] > 0 and r["reference_s"] > 0 and r["ratio"] > 0
    main(["--batch", "4", "--words", "6", "--patches", "5", "--dim", "8", "--prototypes", "7",
          "--threads", "1", "--repeats", "1", "--warmup", "0"])
    assert "ours / reference = " in capsys.readouterr().out
