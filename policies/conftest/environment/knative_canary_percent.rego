package environment

import data.lib

canary_rule := "knative-canary-percent"

canary_path := ["spec", "predictor", "canaryTrafficPercent"]

# The InferenceServices that set a canary split, with the value they set.
canary_percents contains [doc, percent] if {
	some doc in lib.documents
	doc.obj.kind == "InferenceService"
	percent := object.get(doc.obj, canary_path, null)
	percent != null
}

valid_percent(p) if {
	is_number(p)
	p == floor(p)
	p >= 0
	p <= 100
}

deployment_mode(obj) := object.get(obj, ["metadata", "annotations", "serving.kserve.io/deploymentMode"], "RawDeployment")

# METADATA
# title: A KServe canary splits traffic by a percentage Knative accepts
# description: >-
#   spec.predictor.canaryTrafficPercent of a KServe InferenceService is an integer from 0 to 100, and only a
#   Serverless (Knative) InferenceService sets it. Why: KServe turns it into the traffic split of the Knative
#   Service, the latest revision getting that percentage and the last rolled-out one the rest; Knative refuses a
#   split outside 0-100 (the CRD types the field as an integer without bounds, so the apiserver lets 101 or -1
#   through and the InferenceService then never becomes ready), and a string is refused at sync. KServe's
#   RawDeployment reconciler ignores the field altogether: the new version takes all the traffic at once while
#   the spec says it gets a share, so the canary silently does not happen.
# custom:
#   id: knative-canary-percent
#   severity: medium
#   category: Reliability
findings contains lib.field_finding(
	doc, canary_rule, canary_path,
	sprintf("spec.predictor.canaryTrafficPercent is %s: it must be an integer percentage from 0 to 100 (the share of requests the latest revision gets)", [json.marshal(percent)]),
	"set the service's canary traffic percentage in the overlay to a whole number from 0 to 100",
) if {
	some [doc, percent] in canary_percents
	not valid_percent(percent)
}

findings contains lib.field_finding(
	doc, canary_rule, canary_path,
	sprintf("sets spec.predictor.canaryTrafficPercent but runs as %s (serving.kserve.io/deploymentMode): KServe's raw reconciler ignores the field, so the new version would take all the traffic at once and the canary split silently not happen", [deployment_mode(doc.obj)]),
	"drop canaryTrafficPercent (a RawDeployment canary is a Deployment of its own), or run the service Serverless (serving.kserve.io/deploymentMode: Serverless)",
) if {
	some [doc, _] in canary_percents
	not lib.kserve_serverless(doc.obj)
}
