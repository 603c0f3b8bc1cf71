package environment

import data.fixtures

# The OIDC JWKS egress (overlay identity.jwks.url): network-isolation allows exactly the declared CIDRs on
# 443, and no-allow-all never excuses the whole internet for it. Fixtures from network_isolation_test.rego.

jwks_declared := object.union(declared, {
	"external": {"inference-oidc-jwks": {"ports": [{"port": 443, "protocol": "TCP", "name": ""}], "cidrs": ["203.0.113.0/24"]}},
	"connections": array.concat(declared.connections, [{"from": "inference", "to": "inference-oidc-jwks", "why": "jwks"}]),
})

jwks_np(cidr, port) := np("allow-inference-to-oidc-jwks", {"podSelector": sel("inference"), "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"cidr": cidr}}], "ports": [{"port": port, "protocol": "TCP"}]}]})

jwks_net(objs) := {f.msg | some f in findings with input as fixtures.combined(objs) with data.mlplatform.spec as jwks_declared; f.rule == "network-isolation"}

jwks_allow_all(objs) := {f.msg | some f in findings with input as fixtures.combined(objs) with data.mlplatform.spec as jwks_declared; f.rule == "no-allow-all"}

test_jwks_declared_cidr_passes if {
	objs := array.concat(good, [jwks_np("203.0.113.0/24", 443)])
	count(jwks_net(objs)) == 0
	count(jwks_allow_all(objs)) == 0
}

test_jwks_other_cidr_fails if {
	some m in jwks_net(array.concat(good, [jwks_np("198.51.100.0/24", 443)]))
	contains(m, "allows the addresses 198.51.100.0/24, which no declared external of inference names")
}

test_jwks_other_port_fails if {
	some m in jwks_net(array.concat(good, [jwks_np("203.0.113.0/24", 8443)]))
	contains(m, "203.0.113.0/24")
}

test_jwks_undeclared_fails if {
	some m in net(array.concat(good, [jwks_np("203.0.113.0/24", 443)]))
	contains(m, "an address outside the cluster")
}

test_jwks_never_excuses_the_internet if {
	public := {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"]}
	wide := np("allow-inference-to-oidc-jwks", {"podSelector": sel("inference"), "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": public}], "ports": [{"port": 443, "protocol": "TCP"}]}]})
	some m in jwks_allow_all(array.concat(good, [wide]))
	contains(m, "matches everything")
}

test_model_sources_public_egress_still_passes_beside_a_jwks if {
	both := object.union(jwks_declared, {
		"external": object.union(jwks_declared.external, {"model-sources": {"ports": [{"port": 443, "protocol": "TCP", "name": ""}]}}),
		"connections": array.concat(jwks_declared.connections, [{"from": "inference", "to": "model-sources", "why": "fetch"}]),
	})
	public := {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"]}
	fetch := np("allow-inference-to-model-sources", {"podSelector": sel("inference"), "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": public}], "ports": [{"port": 443, "protocol": "TCP"}]}]})
	objs := array.concat(good, [jwks_np("203.0.113.0/24", 443), fetch])
	count({f | some f in findings with input as fixtures.combined(objs) with data.mlplatform.spec as both; f.rule in {"no-allow-all", "network-isolation"}}) == 0
}
