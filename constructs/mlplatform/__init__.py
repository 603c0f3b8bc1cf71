"""The platform generator: typed spec, cdk8s constructs, synthesis into dist/."""
