package object

ingress(spec) := {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "inference", "namespace": "ml-test"}, "spec": spec}

rules := [{"host": "api.example.com"}]

test_tls_passes if count(findings) == 0 with input as ingress({"rules": rules, "tls": [{"hosts": ["api.example.com"], "secretName": "tls"}]})

test_no_tls_fails if {
	some f in findings with input as ingress({"rules": rules})
	f.rule == "ingress-tls"
}

test_uncovered_host_fails if {
	some f in findings with input as ingress({"rules": rules, "tls": [{"hosts": ["other.example.com"]}]})
	contains(f.msg, "api.example.com")
}
