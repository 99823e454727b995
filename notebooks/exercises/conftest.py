# The exercise notebooks are generated (python -m mgca_lite.assignments build) with the outputs that
# depend on an exercise cleared, so strict nbval does not apply to them; tests/test_assignments.py
# checks that they are up to date with the masters and that the grader scores them.
collect_ignore_glob = ["*.ipynb"]
