// Package secretscan finds plaintext secrets in an API definition (a
// Gravitee export, as JSON), so that the hub can refuse to carry them from
// one environment to another (row R33 of shared/reference/reliability.md).
//
// Scan reports where each secret is (an RFC 6901 JSON pointer) and what it
// is, never its value. It flags:
//
//   - An Authorization or Proxy-Authorization header with a credential:
//     an entry {"name": "Authorization", "value": "Basic …"} of a header
//     list, or a member "Authorization": "…" of a header map. The scheme
//     word alone ("Bearer") is no credential.
//   - A field or property whose name says it holds a secret: it ends in
//     password, passwd, passphrase, secret, secretKey, privateKey, apiKey
//     or token (case, "_", "-" and "." ignored), e.g. "password",
//     "clientSecret", "X-Api-Key". Gravitee writes API properties and
//     headers as {"key"|"name": …, "value": …} entries; the entry's name
//     counts for its value.
//   - Any string holding a PEM private-key block.
//
// It accepts, as not plaintext: empty values; references to secrets kept
// elsewhere, {{secret:name}} and any Gravitee expression ({#secrets.get(…)},
// {#properties['…']}, {#api.properties['…']}, …), alone or after an
// authorization scheme ("Bearer {#secrets.get('/vault/api', 'token')}");
// and API properties marked "encrypted": true, whose value is ciphertext.
//
// Gravitee's console exports some plugin configurations (configuration,
// sharedConfiguration, sharedConfigurationOverride) as JSON text inside a
// string; Scan reads that text too, and reports a secret in it with the
// string's pointer and the pointer inside the text.
//
// The package holds no state; Scan is safe for concurrent use.
package secretscan
