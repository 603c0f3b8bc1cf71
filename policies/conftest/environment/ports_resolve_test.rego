package environment

import data.fixtures

service(target) := {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "inference", "namespace": "ml-test"}, "spec": {"selector": {"app": "inference"}, "ports": [{"name": "http", "port": 80, "targetPort": target}]}}

port_findings(objs) := {f.msg | some f in findings with input as fixtures.combined(objs); f.rule == "ports-resolve"}

test_target_by_name_passes if count(port_findings([fixtures.deployment, service("http")])) == 0

test_target_by_existing_number_passes if count(port_findings([fixtures.deployment, service(8080)])) == 0

test_target_naming_no_port_fails if {
	some msg in port_findings([fixtures.deployment, service("metrics")])
	contains(msg, "targets metrics")
}

test_target_number_not_declared_fails if count(port_findings([fixtures.deployment, service(9090)])) == 1

test_unset_target_is_the_port if {
	svc := {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "inference", "namespace": "ml-test"}, "spec": {"selector": {"app": "inference"}, "ports": [{"port": 8080}]}}
	count(port_findings([fixtures.deployment, svc])) == 0
}

probe_on(port) := fixtures.with_container(object.union(fixtures.container, {"readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": port}}}))

test_probe_by_existing_number_passes if count(port_findings([probe_on(8080)])) == 0

test_probe_naming_no_port_fails if {
	some msg in port_findings([probe_on("healthz")])
	contains(msg, "readinessProbe.httpGet.port healthz")
}

test_tcp_probe_on_undeclared_number_fails if {
	d := fixtures.with_container(object.union(fixtures.container, {"livenessProbe": {"tcpSocket": {"port": 9000}}}))
	count(port_findings([d])) == 1
}
