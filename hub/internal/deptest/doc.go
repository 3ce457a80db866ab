// Package deptest enforces the hub module's import rules with a test; it has
// no non-test code. See deptest_test.go for the rules and their reasons.
package deptest
