# Pods do not mount a service account token unless they opt in with the pod-template label
# mlplatform.io/needs-kubernetes-api: "true" (mirrors disable-token-automount).
package object

import data.lib

api_opt_in := "mlplatform.io/needs-kubernetes-api"

findings contains lib.finding(
	doc, "disable-token-automount",
	"the pod does not set automountServiceAccountToken: false",
	sprintf("set it to false, or label the pod template %s: \"true\" if it calls the Kubernetes API", [api_opt_in]),
) if {
	some doc in lib.documents
	spec := lib.pod_spec(doc.obj)
	object.get(spec, "automountServiceAccountToken", true) != false
	object.get(lib.pod_labels(doc.obj), api_opt_in, "") != "true"
}
