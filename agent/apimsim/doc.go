// Package apimsim is an in-memory stand-in for Gravitee APIM's Management API
// v2, serving the endpoints Ferry's agent uses, checked against Gravitee's
// real OpenAPI spec by apimsim_contract_test.go. Tests use it through
// httptest.NewServer; cmd/apim-sim serves it for local runs and demos.
//
// It serves, under /management/v2 and under
// /management/v2/organizations/{orgId} (orgId is ignored):
//
//	GET  /environments/{envId}/apis                              listApis
//	GET  /environments/{envId}/apis/{apiId}                      getApi
//	GET  /environments/{envId}/apis/{apiId}/_export/definition   exportApiDefinition
//	POST /environments/{envId}/apis/_import/definition           createApiWithImportDefinition
//	PUT  /environments/{envId}/apis/{apiId}/_import/definition   updateApiWithDefinition
//
// Any envId is accepted and each environment has its own APIs. Errors use
// Gravitee's Error body. Imports follow what APIM does where it matters to
// promotion: V4 definitions only; the API gets a new id while its crossId is
// kept (or generated); plan and page ids are recalculated, with page parent
// links and plan general conditions remapped from the old page ids to the
// new ones; on update, plans and pages are matched by crossId, plans missing
// from the definition are deleted, and pages are upserted. Closed plans are
// never exported. An import that reuses an HTTP listener path of another API
// of the environment is refused, as APIM does.
//
// Where APIM's behaviour is unknown or unhelpful for tests the stand-in is
// stricter, and says so in its error: creating a second API with a crossId
// already used in the environment is a 409, and an update whose body names a
// different crossId than the stored API is a 400.
//
// Test hooks: Creates, Updates, Hits and APIs report what happened; Import
// adds an API without HTTP; FailNext and DropResponseAfterApply inject
// faults. Stats and StatsHandler give the counters as one snapshot, which
// cmd/apim-sim serves at GET /_sim/stats.
//
// A Server is safe for concurrent use: one mutex guards all its state, and no
// I/O happens while it is held. It starts no goroutines.
package apimsim
