// Package topodoc writes docs/topologies.md: a picture of every example
// topology in topologies/, as a Mermaid flowchart that code-hosting pages
// draw, with the first paragraph of the file's leading comment.
//
// `make graphs` rewrites the page (go test ./internal/topodoc -update),
// and the package's test, part of `make test`, fails with "run make
// graphs" when the page in the repository is not what the files give.
package topodoc
