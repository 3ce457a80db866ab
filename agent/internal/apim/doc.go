// Package apim is a typed client for the part of Gravitee's Management API v2
// that promotion needs: list and read APIs, export an API definition, and
// import a definition to create or update an API.
//
// Paths are relative to Config.BaseURL, for example
// http://127.0.0.1:8083/management/v2, and always name the environment
// (Config.EnvID):
//
//	GET  /environments/{envId}/apis?page=&perPage=              ListAPIs, FindByCrossID
//	GET  /environments/{envId}/apis/{apiId}                     GetAPI
//	GET  /environments/{envId}/apis/{apiId}/_export/definition  Export
//	POST /environments/{envId}/apis/_import/definition          ImportCreate (201)
//	PUT  /environments/{envId}/apis/{apiId}/_import/definition  ImportUpdate (200)
//
// ListAPIs pages by bytes as well as by count: listed APIs are whole API
// objects, so each page holds only as many as fit in a quarter of
// Config.MaxResponseBytes (see ListAPIs).
//
// # Retries
//
// Reads (GET) and ImportUpdate (PUT) are idempotent: applying the same
// definition twice leaves the API as applying it once. They are retried, with
// jittered exponential backoff that honours Retry-After, after a transport
// error and after 429, 502, 503 or 504.
//
// ImportCreate (POST) is not idempotent: a second attempt after the first one
// reached APIM could create a second API. It is retried only when the request
// provably never reached the server: the connection was refused or could not
// be dialled, or the host name did not resolve. It is never retried after a
// timeout, a reset connection or any HTTP status. When the outcome of a create
// is unknown (the connection broke after the request was sent, or APIM or a
// proxy answered 5xx) the error wraps ErrOutcomeUnknown; the caller must look
// the API up with FindByCrossID before trying again.
//
// # Errors
//
// A response with an unexpected status is an *Error carrying Gravitee's error
// body (httpStatus, message, technicalCode, parameters, details). A transport
// failure wraps ErrUnreachable. IsNotFound and IsTemporary classify both; a
// cancelled context is returned as is and is neither.
//
// # Concurrency
//
// A Client is safe for concurrent use by multiple goroutines and holds no
// goroutines of its own. Credentials are never logged: they are Secrets,
// which redact themselves.
package apim
