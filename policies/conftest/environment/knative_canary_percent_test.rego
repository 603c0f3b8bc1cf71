package environment

import data.fixtures

canary_findings(objs) := {f | some f in findings with input as fixtures.combined(objs); f.rule == "knative-canary-percent"}

canary(percent) := fixtures.serverless_isvc({"canaryTrafficPercent": percent})

test_serverless_canary_within_0_and_100_passes if {
	count(canary_findings([fixtures.serverless_isvc({})])) == 0
	count(canary_findings([canary(0)])) == 0
	count(canary_findings([canary(10)])) == 0
	count(canary_findings([canary(100)])) == 0
}

test_percent_above_100_fails if {
	some f in canary_findings([canary(101)])
	f.kind == "InferenceService"
	f.name == "inference"
	f.path == ["spec", "predictor", "canaryTrafficPercent"]
	contains(f.msg, "InferenceService ml-test/inference: spec.predictor.canaryTrafficPercent is 101: it must be an integer percentage from 0 to 100")
}

test_negative_percent_fails if {
	some f in canary_findings([canary(-1)])
	contains(f.msg, "canaryTrafficPercent is -1:")
}

test_non_integer_percent_fails if {
	some f in canary_findings([canary("10")])
	contains(f.msg, `canaryTrafficPercent is "10":`)
	count(canary_findings([canary(12.5)])) == 1
}

test_canary_on_raw_deployment_fails if {
	some f in canary_findings([fixtures.raw_isvc({"canaryTrafficPercent": 10})])
	f.path == ["spec", "predictor", "canaryTrafficPercent"]
	contains(f.msg, "InferenceService ml-test/inference: sets spec.predictor.canaryTrafficPercent but runs as RawDeployment")

	# no deploymentMode annotation is RawDeployment too
	plain := json.remove(canary(10), [["metadata", "annotations", "serving.kserve.io/deploymentMode"]])
	count(canary_findings([plain])) == 1

	# a RawDeployment without the field is fine
	count(canary_findings([fixtures.raw_isvc({})])) == 0
}

test_raw_deployment_with_a_bad_percent_has_both_findings if {
	count(canary_findings([fixtures.raw_isvc({"canaryTrafficPercent": 101})])) == 2
}
