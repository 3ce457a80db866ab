package task

import (
	"ferry.dev/agent/internal/taskstore"
	"ferry.dev/shared/protocol"
)

// fromWire converts a promotion from the hub into the local view's type.
func fromWire(p protocol.Promotion) taskstore.Promotion {
	return taskstore.Promotion{
		ID: p.ID, OrgID: p.OrgID, SourceEnvID: p.SourceEnvID, SourceEnvName: p.SourceEnv,
		TargetEnvID: p.TargetEnvID, TargetEnvName: p.TargetEnv, APIID: p.APIID, CrossID: p.CrossID,
		APIName: p.APIName, APIVersion: p.APIVersion, Requester: p.Requester, Status: string(p.Status),
		Terminal: p.Status.Terminal(), TargetAPIID: p.TargetAPIID, Reason: p.Reason,
		CreatedAt: p.CreatedAt.UTC(), UpdatedAt: p.UpdatedAt.UTC(),
	}
}

// toWireDecision converts a stored decision into its report.
func toWireDecision(d taskstore.Decision) protocol.Decision {
	return protocol.Decision{
		PromotionID: d.PromotionID, Outcome: protocol.DecisionOutcome(d.Outcome), Actor: d.Actor,
		TargetAPIID: d.TargetAPIID, Created: d.Created, Reason: d.Reason, DecidedAt: d.DecidedAt.UTC(),
		Session: d.Session.Reveal(),
	}
}
