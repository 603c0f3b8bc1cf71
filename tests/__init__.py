"""The test suite. A package only so that `tests.support` is importable by tests and benches."""
