package environment

import data.lib

peer_keys := {"ingress": "from", "egress": "to"}

open_peer(p) if count(p) == 0

open_peer(p) if {
	count(object.get(p, "namespaceSelector", {"x": 1})) == 0
	count(object.get(p, "podSelector", {})) == 0
}

open_peer(p) if p.ipBlock.cidr in {"0.0.0.0/0", "::/0"}

# METADATA
# title: No allow rule opens a pod to every source or destination
# description: >-
#   No allow rule opens a pod to every source or destination: a rule without peers, an empty peer, a peer that
#   selects every namespace without narrowing the pods, or an ipBlock of the whole internet. One exception,
#   declared in the spec: egress of a component whose models come from an OCI registry or an https:// URL
#   (spec.external, read from the model catalog by the check) to public addresses, on the declared ports only,
#   with the private, shared, loopback and link-local ranges excepted. A connection to an external that names its
#   own addresses (`cidrs`: an OIDC issuer's JWKS by URL) is no such exception: it never excuses 0.0.0.0/0 or
#   ::/0.
# custom:
#   id: no-allow-all
#   severity: critical
#   category: Network
findings contains lib.finding(
	doc, "no-allow-all",
	sprintf("%s rule %d allows every %s", [direction, i, side]),
	"name the peer: a podSelector (and namespaceSelector for other namespaces) declared as a connection in the spec",
) if {
	some doc in lib.documents
	doc.obj.kind == "NetworkPolicy"
	some direction, key in peer_keys
	some i, rule in object.get(doc.obj, ["spec", direction], [])
	count(object.get(rule, key, [])) == 0
	side := {"ingress": "source", "egress": "destination"}[direction]
}

findings contains lib.finding(
	doc, "no-allow-all",
	sprintf("%s rule %d has a peer that matches everything: %v", [direction, i, p]),
	"narrow the peer to the declared component's pod labels",
) if {
	some doc in lib.documents
	doc.obj.kind == "NetworkPolicy"
	some direction, key in peer_keys
	some i, rule in object.get(doc.obj, ["spec", direction], [])
	some p in object.get(rule, key, [])
	open_peer(p)
	not declared_public_egress(doc, direction, rule, p)
}

# Ranges a public-egress ipBlock must leave out: pods, services, nodes and the cloud metadata endpoint.
never_public := {
	"0.0.0.0/0": {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"},
	"::/0": {"fc00::/7", "fe80::/10"},
}

declared_public_egress(doc, "egress", rule, p) if {
	every r in never_public[p.ipBlock.cidr] {
		r in object.get(p.ipBlock, "except", [])
	}
	some c in object.get(spec, "connections", [])
	ports := object.get(spec, ["external", c.to, "ports"], [])
	count(ports) > 0
	not object.get(spec, ["external", c.to, "cidrs"], false)
	object.get(doc.obj.spec, ["podSelector", "matchLabels", name_label], "") == c.from
	count(object.get(rule, "ports", [])) > 0
	every rp in rule.ports {
		some dp in ports
		rp.port == dp.port
		object.get(rp, "protocol", "TCP") == dp.protocol
	}
}
