"""cdk8s constructs, one per concern. Each adds plain `cdk8s.ApiObject`s (cheap: see bench/synth_bench.py)."""
