//! Pagination, the same for every list: `limit` items after the opaque `cursor` that the
//! previous page gave out as `nextCursor`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::http::error::ApiError;

pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 200;

/// Pagination of every list: `limit` items after the opaque `cursor` of the previous page.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// How many items (1 to 200; 50 when absent).
    pub limit: Option<i64>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(l) if (1..=MAX_PAGE).contains(&l) => Ok(l),
            Some(_) => Err(ApiError::bad_request(format!(
                "limit must be between 1 and {MAX_PAGE}"
            ))),
        }
    }

    /// The decoded cursor.
    pub fn cursor(&self) -> Result<Option<String>, ApiError> {
        self.cursor
            .as_deref()
            .map(|c| {
                URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(bad_cursor)
            })
            .transpose()
    }

    /// The decoded cursor, parsed (an id, for lists ordered by id).
    pub fn cursor_as<T: std::str::FromStr>(&self) -> Result<Option<T>, ApiError> {
        self.cursor_with(|c| c.parse::<T>().ok())
    }

    /// The decoded cursor, parsed by `parse` (`None`: not a cursor this API gave out).
    pub fn cursor_with<T>(
        &self,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, ApiError> {
        self.cursor()?
            .map(|c| parse(&c).ok_or_else(bad_cursor))
            .transpose()
    }
}

/// A cursor this API did not give out.
fn bad_cursor() -> ApiError {
    ApiError::bad_request("cursor is not one this API gave out")
}

/// The key of an item in a list ordered by time, then id (newest first).
pub fn time_key(at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}|{id}", at.to_rfc3339_opts(SecondsFormat::Nanos, true))
}

/// Parses a [`time_key`].
pub fn parse_time_key(key: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (at, id) = key.split_once('|')?;
    Some((at.parse().ok()?, id.parse().ok()?))
}

pub fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

/// The cursor of the next page: present when the page is full.
pub fn next_cursor<T>(items: &[T], limit: i64, key: impl Fn(&T) -> String) -> Option<String> {
    (i64::try_from(items.len()).unwrap_or(i64::MAX) >= limit)
        .then(|| items.last().map(|last| encode_cursor(&key(last))))
        .flatten()
}

/// Declares a page type for lists of `$item`.
macro_rules! page {
    ($name:ident, $item:ty) => {
        #[derive(Debug, serde::Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            pub items: Vec<$item>,
            /// Pass as `cursor` for the next page; absent on the last page.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub next_cursor: Option<String>,
        }
    };
}
pub(crate) use page;
