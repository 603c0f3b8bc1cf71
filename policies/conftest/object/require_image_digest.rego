# Every image is pinned by a sha256 digest and never tagged latest (mirrors require-image-digest).
package object

import data.lib

findings contains lib.finding(
	doc, "require-image-digest",
	sprintf("container %q image %q is not pinned by digest", [c.name, c.image]),
	"set the image digest (repository@sha256:<64 hex>) in the overlay instead of a tag",
) if {
	some doc in lib.documents
	c := lib.containers(lib.pod_spec(doc.obj))[_]
	not regex.match(`@sha256:[a-f0-9]{64}$`, c.image)
}

findings contains lib.finding(
	doc, "require-image-digest",
	sprintf("container %q image %q uses the mutable latest tag", [c.name, c.image]),
	"drop the tag and pin the image by digest in the overlay",
) if {
	some doc in lib.documents
	c := lib.containers(lib.pod_spec(doc.obj))[_]
	regex.match(`:latest(@|$)`, c.image)
}
