"""HTTP benchmarks of crudkit against a hand-written app and a near-limit reference.

Not part of the test suite: run them with `python -m benchmarks.run` (see its docstring).
"""
