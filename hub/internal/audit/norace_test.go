//go:build !race

package audit

// defaultRecords is TestTamperDetectionAtScale's chain length.
const defaultRecords = 100_000
