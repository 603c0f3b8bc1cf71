"""cdk8s constructs, one per concern. Each hands its chart plain manifests; the chart makes them cdk8s
ApiObjects in one batch (see `base.ManifestChart` for why, and bench/synth_bench.py for the numbers)."""
