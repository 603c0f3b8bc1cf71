# Every container and init container sets requests and limits for cpu, memory and ephemeral-storage
# (mirrors the Kyverno policy require-resources).
package object

import data.lib

resource_names := ["cpu", "memory", "ephemeral-storage"]

findings contains lib.finding(
	doc, "require-resources",
	sprintf("container %q has no resources.%s.%s", [c.name, kind, res]),
	"set requests and limits for cpu, memory and ephemeral-storage in the overlay's resources",
) if {
	some doc in lib.documents
	c := lib.containers(lib.pod_spec(doc.obj))[_]
	some kind in ["requests", "limits"]
	some res in resource_names
	not c.resources[kind][res]
}
