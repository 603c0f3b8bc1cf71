package object

import data.fixtures

test_probes_pass if count(findings) == 0 with input as fixtures.deployment

test_missing_liveness_fails if {
	some f in findings with input as fixtures.with_container(json.remove(fixtures.container, ["livenessProbe"]))
	f.rule == "require-probes"
	contains(f.msg, "livenessProbe")
}
