package environment

import data.fixtures

pdb(budget) := {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "inference", "namespace": "ml-test"}, "spec": object.union(budget, {"selector": {"matchLabels": {"app": "inference"}}})}

replicated := object.union(fixtures.deployment, {"spec": {"replicas": 3}})

pdb_findings(objs, env) := {f | some f in findings with input as fixtures.combined(objs) with data.mlplatform.environment as env; f.rule == "prod-pdb"}

test_prod_with_pdb_passes if count(pdb_findings([replicated, pdb({"maxUnavailable": 1})], "prod")) == 0

test_prod_without_pdb_fails if count(pdb_findings([replicated], "prod")) == 1

test_dev_without_pdb_passes if count(pdb_findings([replicated], "dev")) == 0

test_pdb_blocking_drain_fails if {
	some f in pdb_findings([replicated, pdb({"maxUnavailable": 0})], "prod")
	contains(f.msg, "lets 0 of its 3 pods")
}

test_min_available_all_fails if count(pdb_findings([replicated, pdb({"minAvailable": "100%"})], "prod")) == 1

test_min_available_below_min_passes if count(pdb_findings([replicated, pdb({"minAvailable": 2})], "prod")) == 0

test_percentage_rounds_up if count(pdb_findings([replicated, pdb({"maxUnavailable": "10%"})], "prod")) == 0
