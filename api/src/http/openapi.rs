//! The OpenAPI document, served at `/openapi.json`.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::http::routes::{
    audit_events, budgets, capacity_requests, invoices, kubeconfig, links, organizations,
    principals, rate_cards, tenants, usage,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "govcloud",
        description = "The control plane of a shared government cloud: organizations, agencies (tenants), capacity requests and their approval, data-sharing links between agencies, kubeconfigs, people and their API tokens, the audit log, metered usage, rate cards, invoices and credit notes (money as decimal strings of đồng), and budgets. Errors are application/problem+json (RFC 9457).",
        license(name = "Apache-2.0")
    ),
    paths(
        organizations::list, organizations::show, organizations::create,
        organizations::allotment_changes,
        tenants::list, tenants::show, tenants::create, tenants::offboard, tenants::timeline,
        tenants::edit, tenants::suspend, tenants::resume,
        capacity_requests::create, capacity_requests::list, capacity_requests::show,
        capacity_requests::approve, capacity_requests::reject, capacity_requests::cancel,
        kubeconfig::issue,
        links::create, links::list, links::show, links::approve, links::reject, links::close,
        principals::list, principals::show, principals::create, principals::remove,
        principals::rotate,
        audit_events::list,
        usage::ingest, usage::usage, usage::utilisation,
        rate_cards::list, rate_cards::show, rate_cards::create, rate_cards::add_version,
        rate_cards::add_vat,
        invoices::list, invoices::show, invoices::issue, invoices::approve, invoices::dispute,
        invoices::pay, invoices::credit_note, invoices::csv, invoices::pdf, invoices::summary,
        budgets::show, budgets::set, budgets::alerts,
    ),
    components(schemas(crate::http::error::Problem)),
    modifiers(&Common),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

/// What every operation shares: bearer authentication and the problem responses.
struct Common;

/// The error statuses an operation may answer, with what they mean here.
const PROBLEMS: &[(&str, &str)] = &[
    (
        "400",
        "The request is malformed (body, query string or cursor).",
    ),
    ("401", "Missing or invalid credentials."),
    ("403", "The caller's role may not do this."),
    ("404", "No such object, or one the caller may not see."),
    (
        "409",
        "The object's state or a capacity limit forbids this.",
    ),
    ("415", "The body is not JSON."),
    (
        "422",
        "Fields of the request are invalid; `errors` names them.",
    ),
    (
        "503",
        "The cluster or the database could not be reached in time.",
    ),
];

impl Modify for Common {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`gct_…`) or an OIDC ID token from the configured issuer.",
                    ))
                    .build(),
            ),
        );
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                for (status, description) in PROBLEMS {
                    let body = ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build();
                    op.responses
                        .responses
                        .entry((*status).to_string())
                        .or_insert_with(|| {
                            ResponseBuilder::new()
                                .description(*description)
                                .content("application/problem+json", body)
                                .into()
                        });
                }
            }
        }
    }
}

static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| ApiDoc::openapi().to_pretty_json().unwrap_or_default());

pub async fn serve() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}
