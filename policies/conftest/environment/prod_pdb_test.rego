package environment

import data.fixtures

pdb := {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "inference", "namespace": "ml-test"}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "inference"}}}}

replicated := object.union(fixtures.deployment, {"spec": {"replicas": 3}})

pdb_findings(objs, env) := {f | some f in findings with input as fixtures.combined(objs) with data.mlplatform.environment as env; f.rule == "prod-pdb"}

test_prod_with_pdb_passes if count(pdb_findings([replicated, pdb], "prod")) == 0

test_prod_without_pdb_fails if count(pdb_findings([replicated], "prod")) == 1

test_dev_without_pdb_passes if count(pdb_findings([replicated], "dev")) == 0

test_single_replica_passes if count(pdb_findings([object.union(fixtures.deployment, {"spec": {"replicas": 1}})], "prod")) == 0
