// Package testbed is test support for the end-to-end and browser tests
// that run the real binaries: it builds ferry-hub, ferry-agent and
// apim-sim, starts them as processes whose output is kept for failure
// reports, finds free ports, polls for conditions and makes JSON REST
// calls. It imports the standard library only and is never linked into a
// binary.
package testbed
