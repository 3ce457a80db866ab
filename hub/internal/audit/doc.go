// Package audit keeps each organization's append-only, hash-chained audit
// trail. Every entry carries the hash of the one before it, so editing or
// removing an entry breaks the chain and Verify names the first broken link.
//
// Appends are race-free across hubs: the store's unique (organization,
// sequence) key arbitrates, and a loser re-reads the tail and retries. Within
// one hub, appends to one organization are serialised to avoid needless
// retries (a loser also pauses a random moment, so racing hubs spread out).
// Trail is safe for concurrent use.
//
// Anchorer signs, hourly, a digest of each trail's head chained to the
// previous digest, and VerifyAnchors checks a trail against those anchors
// with only the public key: a rewrite of the whole chain, which the chain
// alone cannot reveal, is detected there.
package audit
