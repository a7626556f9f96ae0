//! Tests of the id rules: the validation functions, the typed ids, their serde forms.

use super::*;

#[test]
fn ids_accept_the_documented_patterns_only() {
    assert!(party_id("9999").is_ok());
    assert!(party_id("org-a_1").is_ok());
    assert!(party_id("").is_err());
    assert!(party_id("../etc").is_err());
    assert!(party_id(&"9".repeat(33)).is_err());
    assert!(component("hetero_lr_0").is_ok());
    assert!(component("a/b").is_err());
    assert!(component("a b").is_err());
    assert!(job_id("202611261617000000001234").is_ok());
    assert!(job_id("x;rm").is_err());
    assert!(role("arbiter").is_ok());
    assert!(role("admin").is_err());
    assert!(request_id("").is_ok());
    assert!(request_id("cli:0b6c-1").is_ok());
    assert!(request_id("a\nb").is_err());
}

#[test]
fn job_ids_look_like_fate_ids() {
    // 2026-11-26 16:17:51.123456 UTC
    let id = new_job_id(1_795_709_871_123_456);
    assert_eq!(id.len(), 24);
    assert!(id.starts_with("20261126161751123456"), "{id}");
    assert!(job_id(&id).is_ok());
}

/// Accepts and refuses the same values as the validation function it wraps.
fn string_id_table<T>(check: fn(&str) -> Result<(), InvalidId>, accept: &[&str], refuse: &[&str])
where
    T: for<'a> TryFrom<&'a str, Error = InvalidId>
        + TryFrom<String, Error = InvalidId>
        + std::str::FromStr<Err = InvalidId>
        + std::fmt::Display
        + std::fmt::Debug
        + PartialEq,
{
    for value in accept {
        let typed = T::try_from(*value).unwrap_or_else(|e| panic!("{value:?} refused: {e}"));
        assert_eq!(typed.to_string(), *value);
        assert_eq!(T::try_from(value.to_string()).as_ref(), Ok(&typed));
        assert_eq!(value.parse::<T>().as_ref(), Ok(&typed));
        assert!(check(value).is_ok(), "{value:?}");
    }
    for value in refuse {
        let err = T::try_from(*value).expect_err(value);
        assert_eq!(Err(err.clone()), check(value), "{value:?}");
        assert_eq!(T::try_from(value.to_string()).expect_err(value), err);
        assert_eq!(value.parse::<T>().expect_err(value), err);
    }
}

const HOSTILE: &[&str] = &["", "../x", "a/b", "a b", "a\nb", "x;rm", "é", "a.b"];

#[test]
fn job_ids_accept_and_refuse_what_job_id_does() {
    let long = "9".repeat(33);
    let max = "9".repeat(32);
    let refuse: Vec<&str> = HOSTILE.iter().copied().chain([long.as_str()]).collect();
    string_id_table::<JobId>(
        job_id,
        &["202611261617000000001234", "probe-job", "a_b", &max],
        &refuse,
    );
}

#[test]
fn party_ids_accept_and_refuse_what_party_id_does() {
    let long = "9".repeat(33);
    let refuse: Vec<&str> = HOSTILE.iter().copied().chain([long.as_str()]).collect();
    string_id_table::<PartyId>(party_id, &["9999", "org-a_1", "A"], &refuse);
}

#[test]
fn component_names_accept_and_refuse_what_component_does() {
    let long = "c".repeat(65);
    let max = "c".repeat(64);
    let refuse: Vec<&str> = HOSTILE.iter().copied().chain([long.as_str()]).collect();
    string_id_table::<ComponentName>(component, &["hetero_lr_0", "reader-0", &max], &refuse);
}

#[test]
fn roles_are_the_fate_roles_and_nothing_else() {
    use strum::IntoEnumIterator;
    let refuse: Vec<&str> = HOSTILE
        .iter()
        .copied()
        .chain(["admin", "Guest", "HOST", " local"])
        .collect();
    string_id_table::<Role>(role, ROLES, &refuse);
    let mut names: Vec<&str> = Role::iter().map(Role::as_str).collect();
    let mut roles = ROLES.to_vec();
    roles.sort_unstable();
    // Declared alphabetically, so ordering roles orders their names.
    assert_eq!(names, roles);
    names.sort_unstable();
    assert_eq!(names, roles);
    assert_eq!(Role::Guest.into_inner(), "guest");
    assert_eq!(Role::Host, "host");
    assert_eq!(
        role("admin").expect_err("admin").to_string(),
        r#"role "admin" is invalid: expected guest, host, arbiter or local"#
    );
}

#[test]
fn task_versions_are_non_negative_i32s() {
    for (text, expect) in [
        ("0", Some(0)),
        ("7", Some(7)),
        ("2147483647", Some(i32::MAX)),
    ] {
        let v: TaskVersion = text.parse().expect(text);
        assert_eq!(Some(v.get()), expect);
        assert_eq!(v.to_string(), text);
    }
    for text in [
        "",
        "-1",
        "+1",
        " 1",
        "1.0",
        "x",
        "2147483648",
        "99999999999999999999",
    ] {
        assert!(text.parse::<TaskVersion>().is_err(), "{text:?} accepted");
        assert!(TaskVersion::try_from(text.to_string()).is_err(), "{text:?}");
    }
    assert_eq!(TaskVersion::try_from(3_i32).map(i32::from), Ok(3));
    assert_eq!(TaskVersion::try_from(3_i64).map(i64::from), Ok(3));
    assert_eq!(TaskVersion::try_from(3_u32).map(TaskVersion::get), Ok(3));
    assert!(TaskVersion::try_from(-1_i32).is_err());
    assert!(TaskVersion::try_from(-1_i64).is_err());
    assert!(TaskVersion::try_from(i64::from(i32::MAX) + 1).is_err());
    assert!(TaskVersion::try_from(u32::MAX).is_err());
    assert_eq!(TaskVersion::default(), TaskVersion::ZERO);
    assert_eq!(TaskVersion::ZERO.next().map(TaskVersion::get), Some(1));
    assert_eq!(
        TaskVersion::try_from(i32::MAX)
            .ok()
            .and_then(TaskVersion::next),
        None
    );
}

#[test]
fn field_names_the_request_field_before_the_reason() {
    let err = field::<JobId, _>("job_id", "../x".to_string()).expect_err("../x");
    assert_eq!(
        err.to_string(),
        r#"job_id: job id "../x" is invalid: expected 1 to 32 of A-Z a-z 0-9 _ -"#
    );
    assert_eq!(err.field, "job_id");
    let err = field::<TaskVersion, _>("version", -1).expect_err("-1");
    assert!(err.to_string().starts_with("version: "), "{err}");
    let dynamic = format!("tasks[{}].component", 2);
    let err = field::<ComponentName, _>(dynamic, "a b").expect_err("a b");
    assert!(
        err.to_string()
            .starts_with("tasks[2].component: component name"),
        "{err}"
    );
    let ok: PartyId = field("party_id", "9999").expect("valid");
    assert_eq!(ok, "9999");
}

#[test]
fn task_keys_convert_naming_the_bad_field() {
    let key = |job: &str, component: &str, version: i32, role: &str, party: &str| {
        TaskKey::from_fields(
            job.into(),
            component.into(),
            version,
            role.into(),
            party.into(),
        )
    };
    let good = key("j1", "reader_0", 2, "host", "10000").expect("valid");
    assert_eq!(good.to_string(), "j1 reader_0 v2 (host 10000)");
    assert_eq!(good.audit_key(), "j1/reader_0/2/host/10000");
    assert_eq!(good.audit_key().parse::<TaskKey>().as_ref(), Ok(&good));
    for (bad, field) in [
        (key("../j", "a", 0, "guest", "9"), "job_id: job id"),
        (
            key("j", "a b", 0, "guest", "9"),
            "component: component name",
        ),
        (key("j", "a", -1, "guest", "9"), "version: task version"),
        (key("j", "a", 0, "admin", "9"), "role: role"),
        (key("j", "a", 0, "guest", ""), "party_id: party id"),
    ] {
        let err = bad.expect_err(field);
        assert!(
            err.to_string().starts_with(field),
            "{err} does not start with {field}"
        );
    }
    for text in [
        "",
        "j/a/0/guest",
        "j/a/0/guest/9/x",
        "j/a/-1/guest/9",
        "j/a/0/admin/9",
    ] {
        assert!(text.parse::<TaskKey>().is_err(), "{text:?} accepted");
    }
}

#[test]
fn serde_round_trips_and_refuses_what_conversion_refuses() {
    let key = TaskKey::from_fields("j1".into(), "a".into(), 1, "guest".into(), "9999".into())
        .expect("valid");
    let json = serde_json::to_value(&key).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({
            "job_id": "j1", "component": "a", "version": 1, "role": "guest", "party_id": "9999"
        })
    );
    assert_eq!(serde_json::from_value::<TaskKey>(json).ok(), Some(key));
    for (bad, what) in [
        (
            serde_json::json!({"job_id": "../j", "component": "a", "version": 1, "role": "guest", "party_id": "9"}),
            "job id",
        ),
        (
            serde_json::json!({"job_id": "j", "component": "a/b", "version": 1, "role": "guest", "party_id": "9"}),
            "component name",
        ),
        (
            serde_json::json!({"job_id": "j", "component": "a", "version": -1, "role": "guest", "party_id": "9"}),
            "task version",
        ),
        (
            serde_json::json!({"job_id": "j", "component": "a", "version": 1, "role": "root", "party_id": "9"}),
            "role",
        ),
        (
            serde_json::json!({"job_id": "j", "component": "a", "version": 1, "role": "guest", "party_id": "9 9"}),
            "party id",
        ),
    ] {
        let err = serde_json::from_value::<TaskKey>(bad).expect_err(what);
        assert!(err.to_string().contains(what), "{err} does not name {what}");
    }
    assert_eq!(
        serde_json::to_string(&Role::Arbiter).ok().as_deref(),
        Some(r#""arbiter""#)
    );
    assert_eq!(
        serde_json::from_str::<Role>(r#""local""#).ok(),
        Some(Role::Local)
    );
    assert!(serde_json::from_str::<JobId>(r#""a;b""#).is_err());
    assert!(serde_json::from_str::<PartyId>(r#""""#).is_err());
    assert_eq!(
        serde_json::from_str::<ComponentName>(r#""x_1""#)
            .ok()
            .map(ComponentName::into_inner),
        Some("x_1".to_string())
    );
}

#[test]
fn string_ids_look_up_maps_by_str() {
    let mut map = std::collections::HashMap::new();
    map.insert(JobId::try_from("j1").expect("valid"), 1);
    assert_eq!(map.get("j1"), Some(&1));
    let id = PartyId::try_from("9999").expect("valid");
    assert_eq!(id.as_str(), "9999");
    assert_eq!(AsRef::<str>::as_ref(&id), "9999");
    assert_eq!(String::from(id), "9999");
}
