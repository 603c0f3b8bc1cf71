package object

import data.fixtures

rps_findings(obj) := {f | some f in findings with input as obj; f.rule == "restricted-pod-security"}

sc(extra) := fixtures.with_container(object.union(fixtures.container, {"securityContext": object.union(fixtures.container.securityContext, extra)}))

test_restricted_passes if count(rps_findings(fixtures.deployment)) == 0

test_host_network_fails if count(rps_findings(fixtures.with_pod({"hostNetwork": true}))) == 1

test_host_path_fails if count(rps_findings(fixtures.with_pod({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}))) == 1

test_privileged_fails if count(rps_findings(sc({"privileged": true}))) == 1

test_escalation_fails if count(rps_findings(sc({"allowPrivilegeEscalation": true}))) == 1

test_root_user_fails if count(rps_findings(sc({"runAsUser": 0}))) == 1

test_added_capability_fails if count(rps_findings(sc({"capabilities": {"drop": ["ALL"], "add": ["NET_RAW"]}}))) == 1

test_writable_root_fails if count(rps_findings(sc({"readOnlyRootFilesystem": false}))) == 1

test_unconfined_seccomp_fails if count(rps_findings(sc({"seccompProfile": {"type": "Unconfined"}}))) == 1

test_host_port_fails if {
	c := object.union(fixtures.container, {"ports": [{"containerPort": 8080, "hostPort": 8080}]})
	count(rps_findings(fixtures.with_container(c))) == 1
}

test_pod_without_non_root_fails if {
	d := json.remove(fixtures.deployment, ["spec/template/spec/securityContext/runAsNonRoot"])
	count(rps_findings(d)) == 1
}
