// Package cluster holds what runs Gateflow beyond one machine, against a
// Temporal, a Kafka and a ClickHouse cluster: a Helm chart (helm/gateflow),
// Kubernetes manifests rendered from it for Kustomize (kubernetes/: a base,
// components and overlays), systemd units with their environment files
// (systemd/) and a Dockerfile. Its only code finds and runs helm for the
// tests; its test checks that the manifests hang together (references,
// probes, volumes, the config dir they mount) and that the committed
// Kustomize files are the chart's current render. That every GATEFLOW_*
// variable they set is a real flag of its process is checked by
// cmd/gateflow/docs_test.go, which can build the command tree. The
// operator's guide is docs/OPERATIONS.md.
package cluster
