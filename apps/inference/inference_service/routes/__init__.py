"""HTTP routes: health, V2 (Open Inference Protocol), V1 (KServe predict), metrics."""
