package environment

import data.fixtures

svc(selector) := {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "inference", "namespace": "ml-test"}, "spec": {"selector": selector}}

svc_findings(objs) := {f | some f in findings with input as fixtures.combined(objs); f.rule == "service-selects-workload"}

test_matching_selector_passes if count(svc_findings([fixtures.deployment, svc({"app": "inference"})])) == 0

test_typo_selector_fails if count(svc_findings([fixtures.deployment, svc({"app": "inferense"})])) == 1

test_no_selector_fails if count(svc_findings([fixtures.deployment, svc({})])) == 1

sts := {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "redis", "namespace": "ml-test"}, "spec": {"template": {"metadata": {"labels": {"app": "redis"}}}}}

test_statefulset_pod_name_passes if count(svc_findings([sts, svc({"app": "redis", "statefulset.kubernetes.io/pod-name": "redis-0"})])) == 0

test_other_set_pod_name_fails if count(svc_findings([sts, svc({"app": "redis", "statefulset.kubernetes.io/pod-name": "cache-0"})])) == 1
