// Package herdtest holds the reconnect-herd test of catalogue row B3
// (shared/reference/reliability.md): hundreds of the agent's real link
// clients (package link, in process) connected to a real ferry-hub process,
// which is killed and restarted. It has no non-test code.
//
// It lives under link because the agent module's import rules let only
// link (and its sub-packages) and daemon import the link client.
package herdtest
