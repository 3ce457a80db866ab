// Package definition turns a Gravitee API export into a definition that can
// cross environments.
//
// Its single job is Sanitize: it takes the JSON that the Management API v2
// returns from GET /environments/{envId}/apis/{apiId}/_export/definition (the
// ExportApiV4 shape) and removes everything that belongs to the source
// environment, so that importing the result into another environment creates
// or updates "the same API" there, matched by crossId.
//
// What Sanitize removes:
//
//   - Member- and group-shaped data, anywhere in the document: every key named
//     members, memberships, groups or primaryOwner. This includes the
//     top-level members list, api.groups and api.primaryOwner. The primary
//     owner is a user (or group) of the source organization; on create the
//     target APIM makes the importing user the primary owner instead.
//   - Group references used as access restrictions: plans[].excludedGroups and
//     page accessControls entries whose referenceType is GROUP. They name
//     groups of the source environment, which do not exist in the target.
//     Removing them widens access in the target; re-apply such restrictions
//     there.
//   - Environment-local ids: api.id, api._links, api.flows[].id, plans[].id,
//     plans[].apiId, plans[].apiProductId, plans[].flows[].id,
//     pages[].referenceId, pages[].lastContributor and metadata[].apiId.
//
// Plugin configuration objects (keys configuration, sharedConfiguration and
// sharedConfigurationOverride) are opaque: nothing inside them is removed,
// even a key named groups, because it belongs to the plugin.
//
// What Sanitize keeps and fills in:
//
//   - crossIds. If api.crossId is missing, the caller's fallback is used (see
//     StableCrossID). A plan or page without a crossId gets one derived from
//     the API's crossId and the plan's or page's old id (or its name when it
//     has no id), so that repeated promotions of the same source API give the
//     same values.
//   - Page structure. A page's id is replaced by its crossId, and every
//     reference to a page (pages[].parentId and plans[].generalConditions) is
//     rewritten to the referenced page's crossId. Gravitee's import rebuilds
//     page links by looking up the old page id in a map of old to new ids;
//     giving each page an id that equals its crossId keeps that lookup working
//     while no id of the source environment leaves it. A reference to a page
//     that is not in the export is removed, as Gravitee's import would.
//   - Everything else, including fields this package does not know, with the
//     same JSON values (numbers keep their exact literal text). Object keys
//     come out sorted and the output is compact, so Sanitize is deterministic
//     and idempotent.
//
// Sanitize accepts V4 definitions only, like Gravitee's own v2 import, and
// refuses the legacy V2 export format (top-level "gravitee": "2.0.0"). Info
// reads the crossId, name and version of either format without changing
// anything.
//
// The package holds no state; every function is safe for concurrent use.
package definition
