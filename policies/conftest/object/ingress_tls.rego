# Every Ingress terminates TLS for every host it serves.
package object

import data.lib

findings contains lib.finding(doc, "ingress-tls", "Ingress has no tls section", "add spec.tls with a secretName (the cert-manager issuer fills it)") if {
	some doc in lib.documents
	doc.obj.kind == "Ingress"
	count(object.get(doc.obj, ["spec", "tls"], [])) == 0
}

findings contains lib.finding(doc, "ingress-tls", sprintf("host %q is not covered by spec.tls", [rule.host]), "list the host under spec.tls[].hosts") if {
	some doc in lib.documents
	doc.obj.kind == "Ingress"
	count(object.get(doc.obj, ["spec", "tls"], [])) > 0
	some rule in object.get(doc.obj, ["spec", "rules"], [])
	rule.host
	tls_hosts := {h | some t in doc.obj.spec.tls; some h in object.get(t, "hosts", [])}
	not rule.host in tls_hosts
}
