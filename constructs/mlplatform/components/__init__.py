"""cdk8s constructs, one per concern: cdk8s-plus L2 constructs where they express what the platform needs,
the k8s L1 classes of cdk8s-plus-33 for the rest, and `cdk8s import`ed classes (imports/) for custom
resources. See `base` for the shared pieces and the cost model."""
