//! govcloud's Kubernetes side: the `Tenant` custom resource, its reconciler, metering and leader
//! election (see `../shared/DESIGN.md` §2–§3). The controller arrives with the operator issue; this
//! crate exists now so that the workspace has its final shape.
