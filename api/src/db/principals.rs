use sqlx::PgExecutor;
use uuid::Uuid;

use crate::auth::{Caller, Role};

#[derive(sqlx::FromRow)]
struct PrincipalRow {
    name: String,
    role: String,
    organization_id: Option<Uuid>,
    tenant_id: Option<Uuid>,
}

impl PrincipalRow {
    fn into_caller(self) -> Option<Caller> {
        let role = self.role.parse::<Role>().ok()?;
        Some(Caller {
            name: self.name,
            role,
            organization_id: self.organization_id,
            tenant_id: self.tenant_id,
        })
    }
}

// A tenant admin's organization is its tenant's.
const SELECT: &str = "select p.name, p.role, coalesce(p.organization_id, t.organization_id) as organization_id, p.tenant_id
    from principal p left join tenant t on t.tenant_id = p.tenant_id";

pub async fn by_token_hash(db: impl PgExecutor<'_>, hash: &[u8]) -> sqlx::Result<Option<Caller>> {
    let row: Option<PrincipalRow> = sqlx::query_as(&format!(
        "{SELECT} join api_token k on k.principal_id = p.principal_id
         where k.token_hash = $1 and (k.expires_at is null or k.expires_at > now())"
    ))
    .bind(hash)
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(PrincipalRow::into_caller))
}

pub async fn by_oidc_subject(
    db: impl PgExecutor<'_>,
    subject: &str,
) -> sqlx::Result<Option<Caller>> {
    let row: Option<PrincipalRow> = sqlx::query_as(&format!("{SELECT} where p.oidc_subject = $1"))
        .bind(subject)
        .fetch_optional(db)
        .await?;
    Ok(row.and_then(PrincipalRow::into_caller))
}

pub struct NewPrincipal<'a> {
    pub name: &'a str,
    pub role: Role,
    pub organization_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    pub oidc_subject: Option<&'a str>,
}

pub async fn insert(db: impl PgExecutor<'_>, p: NewPrincipal<'_>) -> sqlx::Result<Uuid> {
    let organization_id = match p.role {
        Role::TenantAdmin => None,
        _ => p.organization_id,
    };
    sqlx::query_scalar(
        "insert into principal (name, role, organization_id, tenant_id, oidc_subject) values ($1, $2, $3, $4, $5)
         returning principal_id",
    )
    .bind(p.name)
    .bind(p.role.as_str())
    .bind(organization_id)
    .bind(p.tenant_id)
    .bind(p.oidc_subject)
    .fetch_one(db)
    .await
}

pub async fn insert_token(
    db: impl PgExecutor<'_>,
    principal_id: Uuid,
    hash: &[u8],
) -> sqlx::Result<()> {
    sqlx::query("insert into api_token (principal_id, token_hash) values ($1, $2)")
        .bind(principal_id)
        .bind(hash)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn id_by_name(db: impl PgExecutor<'_>, name: &str) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("select principal_id from principal where name = $1")
        .bind(name)
        .fetch_optional(db)
        .await
}
