package environment

import data.fixtures

svc(selector) := {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "inference", "namespace": "ml-test"}, "spec": {"selector": selector}}

svc_findings(objs) := {f | some f in findings with input as fixtures.combined(objs); f.rule == "service-selects-workload"}

test_matching_selector_passes if count(svc_findings([fixtures.deployment, svc({"app": "inference"})])) == 0

test_typo_selector_fails if count(svc_findings([fixtures.deployment, svc({"app": "inferense"})])) == 1

test_no_selector_fails if count(svc_findings([fixtures.deployment, svc({})])) == 1
