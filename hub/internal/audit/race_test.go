//go:build race

package audit

// defaultRecords is TestTamperDetectionAtScale's chain length under -race.
const defaultRecords = 20_000
