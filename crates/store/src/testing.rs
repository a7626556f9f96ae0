//! Test support shared by every store's contract tests: fresh SQLite files and, where
//! `FEDFLOW_TEST_POSTGRES_URL` names a server, fresh PostgreSQL databases, so the same
//! contract runs on both backends. CI sets the variable; without it only SQLite runs.

use sea_orm::{ConnectionTrait, DbErr};

use crate::sqlite_url;

/// For tests: creates the empty PostgreSQL database `name` (lowercase letters, digits and
/// `_` only) on the server of `admin_url` (whose user may create databases); returns its URL.
pub async fn create_postgres_database(admin_url: &str, name: &str) -> Result<String, DbErr> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(DbErr::Custom(format!("unusable database name {name:?}")));
    }
    let admin = sea_orm::Database::connect(admin_url).await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    admin.close().await?;
    Ok(postgres_url_with_database(admin_url, name))
}

/// `admin_url` with its database replaced by `name` (which may hold `{placeholders}`).
pub fn postgres_url_with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let prefix = base.rsplit_once('/').map_or(base, |(prefix, _)| prefix);
    format!("{prefix}/{name}{query}")
}

/// A name no other test run uses, for test databases.
pub fn unique_test_name(hint: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "ff_{}_{}_{}_{hint}",
        std::process::id(),
        nanos % 1_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
    .chars()
    .map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '_'
        }
    })
    .collect()
}

/// The URLs a store contract test runs on: a fresh SQLite file always, and a fresh PostgreSQL
/// database when `FEDFLOW_TEST_POSTGRES_URL` names a server (CI sets it).
pub async fn contract_backends(name_hint: &str) -> Vec<String> {
    // Kept on purpose: the returned URLs outlive this function.
    let dir = tempfile::Builder::new()
        .prefix(&format!("fedflow-contract-{name_hint}-"))
        .tempdir()
        .expect("create a temporary directory for a contract test")
        .keep();
    let mut urls = vec![sqlite_url(&dir.join("store.db"))];
    match std::env::var("FEDFLOW_TEST_POSTGRES_URL") {
        Ok(admin) if !admin.is_empty() => {
            match create_postgres_database(&admin, &unique_test_name(name_hint)).await {
                Ok(url) => urls.push(url),
                Err(e) => panic!("FEDFLOW_TEST_POSTGRES_URL is set but unusable: {e}"),
            }
        }
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must set FEDFLOW_TEST_POSTGRES_URL"
            );
            eprintln!("FEDFLOW_TEST_POSTGRES_URL unset: store contract test on SQLite only");
        }
    }
    urls
}

/// A store opened by `open` on each of [`contract_backends`]: the fixture of every store
/// contract test.
pub async fn contract_stores<S, E, F, Fut>(name_hint: &str, open: F) -> Vec<S>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<S, E>>,
    E: std::fmt::Display,
{
    let mut stores = Vec::new();
    for url in contract_backends(name_hint).await {
        match open(url).await {
            Ok(store) => stores.push(store),
            Err(e) => panic!("the store opens: {e}"),
        }
    }
    stores
}
