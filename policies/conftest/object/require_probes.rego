# Every (non-init) container has a readiness and a liveness probe (mirrors require-probes).
package object

import data.lib

findings contains lib.finding(
	doc, "require-probes",
	sprintf("container %q has no %s", [c.name, probe]),
	"add readinessProbe and livenessProbe (GET /v2/health/ready and /v2/health/live on port http)",
) if {
	some doc in lib.documents
	some c in object.get(lib.pod_spec(doc.obj), "containers", [])
	some probe in ["readinessProbe", "livenessProbe"]
	count(object.get(c, probe, {})) == 0
}
