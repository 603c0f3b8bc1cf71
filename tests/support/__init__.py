"""What tests and benches share: processes (a free port, start and wait until ready, stop), manifests (find an
object by kind and name) and the service (`python -m inference_service` on a free port, ready).

Importable as `tests.support` from pytest (pyproject's `pythonpath`) and from `python bench/<name>.py` (each
bench puts the repository root on sys.path first)."""
