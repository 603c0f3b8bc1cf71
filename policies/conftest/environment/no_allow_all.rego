# No allow rule opens a pod to every source or destination: a rule without peers, an empty peer,
# a peer that selects every namespace without narrowing the pods, or an ipBlock of the whole internet.
package environment

import data.lib

peer_keys := {"ingress": "from", "egress": "to"}

open_peer(p) if count(p) == 0

open_peer(p) if {
	count(object.get(p, "namespaceSelector", {"x": 1})) == 0
	count(object.get(p, "podSelector", {})) == 0
}

open_peer(p) if p.ipBlock.cidr in {"0.0.0.0/0", "::/0"}

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
}
