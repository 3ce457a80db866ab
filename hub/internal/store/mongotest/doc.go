// Package mongotest gives tests a MongoDB wire server: FerretDB embedded
// in-process on a temporary SQLite directory, or, when the environment
// variable FERRY_TEST_MONGO_URI is set, a real MongoDB deployment.
//
// Start is safe for concurrent use. Tests that run at the same time share
// one embedded FerretDB (each gets its own database); the server stops when
// the last of them finishes.
package mongotest
