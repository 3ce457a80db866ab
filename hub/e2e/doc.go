// Package e2e holds Ferry's end-to-end tests: they build the real binaries
// (ferry-hub, ferry-agent, apim-sim) through the workspace, run them as
// processes on loopback, and drive them over their REST APIs and WebSocket
// links. The package has no non-test code.
package e2e
