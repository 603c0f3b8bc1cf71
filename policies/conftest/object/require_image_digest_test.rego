package object

import data.fixtures

test_digest_passes if count(findings) == 0 with input as fixtures.deployment

test_tag_without_digest_fails if {
	some f in findings with input as fixtures.with_container(object.union(fixtures.container, {"image": "ghcr.io/x/y:1.2.3"}))
	f.rule == "require-image-digest"
}

test_latest_fails_even_with_digest if {
	img := "ghcr.io/x/y:latest@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	some f in findings with input as fixtures.with_container(object.union(fixtures.container, {"image": img}))
	contains(f.msg, "latest")
}
