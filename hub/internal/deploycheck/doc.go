// Package deploycheck checks the repository's deployment files; it has no
// non-test code of substance.
//
// Its tests load docker-compose.yml with compose-go and cross-check it
// against the Dockerfiles, the Prometheus configuration and alert rules, the
// Grafana dashboard, the systemd units and the Kubernetes manifests under
// deploy/, so that a renamed binary, service, port, metric or mounted file
// breaks `go test` instead of `docker compose up`. Nothing here needs a
// Docker engine or the network.
//
// The metric names the hub and agent must export are listed once, in
// metricContract (metrics_test.go); the alert rules and the dashboard may use
// no other ferry_* metric.
package deploycheck
