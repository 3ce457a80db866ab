// Package faultproxy is a TCP proxy for tests that stands between two
// processes (an agent and the hub) and injects network faults on command:
// close every connection (Cut), reset every connection with an RST (Reset),
// blackhole the link (Hang: accept and hold, forward nothing, until Heal),
// add latency (SetDelay per chunk, or SetLatency pipelined with jitter),
// cap throughput (SetThrottle), split the stream into small segments
// (SetSlice) and send WebSocket messages twice (SetDuplicate).
//
// It forwards bytes as they arrive and never holds them back for framing:
// on connections upgraded to WebSocket it follows the RFC 6455 frames of
// each direction as they stream through, so that it can write a message
// again right after its last byte, show messages to an observer (Observe)
// and count them.
//
// A Proxy is safe for concurrent use. Listen starts its accept loop; Close
// stops it, closes every connection and waits for every goroutine it
// started.
package faultproxy
