package definition

import (
	"fmt"
	"strconv"
)

// memberKeys are removed wherever they appear outside plugin configuration:
// they hold users and groups of the source environment.
var memberKeys = []string{"members", "memberships", "groups", "primaryOwner"}

// opaqueKeys hold plugin-owned configuration, which is never inspected.
var opaqueKeys = map[string]bool{
	"configuration":               true,
	"sharedConfiguration":         true,
	"sharedConfigurationOverride": true,
}

// sanitize rewrites root (an ExportApiV4 document whose api object is api) in
// place.
func sanitize(root, api map[string]any, fallbackCrossID string) error {
	stripMemberKeys(root)

	crossID, err := optionalString(api, "crossId", "api.crossId")
	if err != nil {
		return err
	}
	if crossID == "" {
		if fallbackCrossID == "" {
			return fmt.Errorf("%w: api.crossId is missing and no fallback crossId was given", ErrInvalid)
		}
		crossID = fallbackCrossID
		api["crossId"] = crossID
	}
	delete(api, "id")
	delete(api, "_links")
	if err := stripFlowIDs(api, "api.flows"); err != nil {
		return err
	}

	pages, err := objectList(root, "pages")
	if err != nil {
		return err
	}
	refs := make(map[string]string) // old page id or crossId -> crossId
	keys := newKeySet()
	for i, p := range pages {
		if err := assignPageCrossIDs(p, crossID, fmt.Sprintf("pages[%d]", i), refs, keys); err != nil {
			return err
		}
	}
	for i, p := range pages {
		if err := relinkPage(p, fmt.Sprintf("pages[%d]", i), refs); err != nil {
			return err
		}
	}

	plans, err := objectList(root, "plans")
	if err != nil {
		return err
	}
	keys = newKeySet()
	for i, p := range plans {
		if err := sanitizePlan(p, crossID, fmt.Sprintf("plans[%d]", i), refs, keys); err != nil {
			return err
		}
	}

	metadata, err := objectList(root, "metadata")
	if err != nil {
		return err
	}
	for _, m := range metadata {
		delete(m, "apiId")
	}
	return nil
}

// stripMemberKeys removes memberKeys from v and everything below it, except
// inside plugin configuration.
func stripMemberKeys(v any) {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range memberKeys {
			delete(v, k)
		}
		for k, child := range v {
			if !opaqueKeys[k] {
				stripMemberKeys(child)
			}
		}
	case []any:
		for _, child := range v {
			stripMemberKeys(child)
		}
	}
}

// assignPageCrossIDs gives page (and its translations) a crossId if it has
// none, replaces its id with that crossId, removes its environment-local
// fields, and records how references to it are rewritten in refs.
func assignPageCrossIDs(page map[string]any, apiCrossID, where string, refs map[string]string, keys *keySet) error {
	crossID, err := optionalString(page, "crossId", where+".crossId")
	if err != nil {
		return err
	}
	oldID, _ := page["id"].(string)
	if crossID == "" {
		crossID = deriveCrossID(apiCrossID, "page", keys.unique(oldID, page))
		page["crossId"] = crossID
	}
	if oldID != "" {
		refs[oldID] = crossID
	}
	refs[crossID] = crossID
	page["id"] = crossID
	delete(page, "referenceId")
	delete(page, "lastContributor")
	if err := dropGroupAccessControls(page, where); err != nil {
		return err
	}

	translations, err := objectList(page, "translations")
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	for i, t := range translations {
		if err := assignPageCrossIDs(t, crossID, fmt.Sprintf("%s.translations[%d]", where, i), refs, keys); err != nil {
			return err
		}
	}
	return nil
}

// relinkPage rewrites page.parentId (and its translations') to the parent's
// crossId, removing it if the parent is not part of the export.
func relinkPage(page map[string]any, where string, refs map[string]string) error {
	if err := rewriteRef(page, "parentId", where+".parentId", refs); err != nil {
		return err
	}
	translations, _ := objectList(page, "translations") // checked by assignPageCrossIDs
	for i, t := range translations {
		if err := relinkPage(t, fmt.Sprintf("%s.translations[%d]", where, i), refs); err != nil {
			return err
		}
	}
	return nil
}

// dropGroupAccessControls removes the page access controls that name a group.
func dropGroupAccessControls(page map[string]any, where string) error {
	raw, ok := page["accessControls"]
	if !ok || raw == nil {
		return nil
	}
	list, ok := raw.([]any)
	if !ok {
		return fmt.Errorf("%w: %s.accessControls is not an array", ErrInvalid, where)
	}
	kept := make([]any, 0, len(list))
	for _, ac := range list {
		if m, ok := ac.(map[string]any); ok && m["referenceType"] == "GROUP" {
			continue
		}
		kept = append(kept, ac)
	}
	page["accessControls"] = kept
	return nil
}

// sanitizePlan removes a plan's environment-local ids, gives it a crossId if
// it has none and points its general conditions at the page's crossId.
func sanitizePlan(plan map[string]any, apiCrossID, where string, refs map[string]string, keys *keySet) error {
	crossID, err := optionalString(plan, "crossId", where+".crossId")
	if err != nil {
		return err
	}
	if crossID == "" {
		oldID, _ := plan["id"].(string)
		plan["crossId"] = deriveCrossID(apiCrossID, "plan", keys.unique(oldID, plan))
	}
	delete(plan, "id")
	delete(plan, "apiId")
	delete(plan, "apiProductId")
	delete(plan, "excludedGroups")
	if err := rewriteRef(plan, "generalConditions", where+".generalConditions", refs); err != nil {
		return err
	}
	return stripFlowIDs(plan, where+".flows")
}

// stripFlowIDs removes the id of every flow in obj.flows.
func stripFlowIDs(obj map[string]any, where string) error {
	flows, err := objectList(obj, "flows")
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	for _, f := range flows {
		delete(f, "id")
	}
	return nil
}

// rewriteRef replaces the page reference obj[key] with the page's crossId,
// and removes it if it names no page of the export. An empty reference is
// left alone.
func rewriteRef(obj map[string]any, key, where string, refs map[string]string) error {
	ref, err := optionalString(obj, key, where)
	if err != nil || ref == "" {
		return err
	}
	if crossID, ok := refs[ref]; ok {
		obj[key] = crossID
	} else {
		delete(obj, key)
	}
	return nil
}

// optionalString returns obj[key], which must be a string, null or absent.
func optionalString(obj map[string]any, key, where string) (string, error) {
	switch v := obj[key].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", fmt.Errorf("%w: %s is a %T, want a string", ErrInvalid, where, v)
	}
}

// objectList returns obj[key] as a list of objects. A missing or null value
// is an empty list.
func objectList(obj map[string]any, key string) ([]map[string]any, error) {
	raw, ok := obj[key]
	if !ok || raw == nil {
		return nil, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not an array", ErrInvalid, key)
	}
	out := make([]map[string]any, len(list))
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: %s[%d] is not an object", ErrInvalid, key, i)
		}
		out[i] = m
	}
	return out, nil
}

// keySet makes the keys that plan and page crossIds are derived from unique
// within one document.
type keySet struct{ seen map[string]int }

func newKeySet() *keySet { return &keySet{seen: make(map[string]int)} }

// unique returns "id:<oldID>", or "name:<name>" when there is no old id,
// with "#n" appended if the same key was already handed out.
func (k *keySet) unique(oldID string, obj map[string]any) string {
	key := "id:" + oldID
	if oldID == "" {
		name, _ := obj["name"].(string)
		key = "name:" + name
	}
	n := k.seen[key]
	k.seen[key] = n + 1
	if n > 0 {
		key += "#" + strconv.Itoa(n)
	}
	return key
}
