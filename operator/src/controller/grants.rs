//! Who grants whom a link, indexed both ways from the Tenant watch, so that finding a tenant's
//! partners costs what its own links cost, not a walk over every tenant (which made a cold
//! start quadratic in the number of tenants).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use kube::ResourceExt;

use govcloud_tenant::crd::Tenant;

#[derive(Debug, Default)]
struct Index {
    /// grantee → the tenants whose `allowFrom` names it.
    granters: HashMap<String, BTreeSet<String>>,
    /// granter → the tenants its `allowFrom` names.
    grantees: HashMap<String, BTreeSet<String>>,
}

/// The links between tenants as `spec.network.allowFrom` declares them.
#[derive(Debug, Default)]
pub struct Grants(Mutex<Index>);

impl Grants {
    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes in a tenant as it is now; answers whom it granted before.
    pub fn set(&self, tenant: &Tenant) -> BTreeSet<String> {
        let granter = tenant.name_any();
        let now: BTreeSet<String> = tenant
            .spec
            .network
            .allow_from
            .iter()
            .map(|g| g.tenant.clone())
            .filter(|g| *g != granter)
            .collect();
        let mut index = self.lock();
        let before = index.grantees.remove(&granter).unwrap_or_default();
        for gone in before.difference(&now) {
            if let Some(set) = index.granters.get_mut(gone) {
                set.remove(&granter);
                if set.is_empty() {
                    index.granters.remove(gone);
                }
            }
        }
        for g in &now {
            index
                .granters
                .entry(g.clone())
                .or_default()
                .insert(granter.clone());
        }
        if !now.is_empty() {
            index.grantees.insert(granter, now);
        }
        before
    }

    /// Forgets a deleted tenant's grants (grants to it stay: they are its granters' specs);
    /// answers whom it granted.
    pub fn remove(&self, tenant: &str) -> BTreeSet<String> {
        let mut index = self.lock();
        let before = index.grantees.remove(tenant).unwrap_or_default();
        for g in &before {
            if let Some(set) = index.granters.get_mut(g) {
                set.remove(tenant);
                if set.is_empty() {
                    index.granters.remove(g);
                }
            }
        }
        before
    }

    /// The tenants that grant `grantee` a link.
    pub fn granters_of(&self, grantee: &str) -> Vec<String> {
        self.lock()
            .granters
            .get(grantee)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Everyone a tenant is linked with, either way.
    pub fn partners_of(&self, tenant: &str) -> BTreeSet<String> {
        let index = self.lock();
        let mut all: BTreeSet<String> = index.grantees.get(tenant).cloned().unwrap_or_default();
        all.extend(index.granters.get(tenant).into_iter().flatten().cloned());
        all.remove(tenant);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str, grants: &[&str]) -> Tenant {
        let allow: Vec<serde_json::Value> = grants
            .iter()
            .map(|g| serde_json::json!({"tenant": g, "namespace": "prod", "ports": [443]}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "govcloud.io/v1alpha1", "kind": "Tenant",
            "metadata": {"name": name},
            "spec": {"displayName": name, "organization": "o", "owners": [], "namespaces": [],
                "network": {"allowFrom": allow}, "billing": {"plan": "Reserved"}}
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn grants_are_found_both_ways_and_follow_edits_and_deletions() {
        let g = Grants::default();
        g.set(&tenant("a", &["b", "c", "a"]));
        g.set(&tenant("d", &["b"]));
        assert_eq!(g.granters_of("b"), ["a", "d"]);
        assert_eq!(
            g.granters_of("a"),
            Vec::<String>::new(),
            "a grant to oneself is no link"
        );
        assert_eq!(
            g.partners_of("a"),
            BTreeSet::from(["b".to_string(), "c".to_string()])
        );
        // a withdraws its grant to b: b was its partner before.
        assert!(g.set(&tenant("a", &["c"])).contains("b"));
        assert_eq!(g.granters_of("b"), ["d"]);
        assert_eq!(g.partners_of("b"), BTreeSet::from(["d".to_string()]));
        assert_eq!(g.remove("d"), BTreeSet::from(["b".to_string()]));
        assert!(g.granters_of("b").is_empty());
        assert!(g.partners_of("b").is_empty());
        assert_eq!(g.granters_of("c"), ["a"]);
    }
}
