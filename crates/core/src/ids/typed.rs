//! Typed identifiers: one newtype per kind of id, valid by construction. A request is converted
//! once, on arrival, with [`field`], which names the request field in the error; after that the
//! code passes [`JobId`], [`PartyId`], [`ComponentName`], [`Role`], [`TaskVersion`] and
//! [`TaskKey`] around and never checks again. Deserializing validates too, so a row or a message
//! read back cannot smuggle in a malformed id.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::InvalidId;

/// A request field that did not convert: `job_id: job id "../x" is invalid: expected ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {source}")]
pub struct FieldError {
    /// The field as the request spells it, e.g. `job_id` or `tasks[2].component`.
    pub field: Cow<'static, str>,
    pub source: InvalidId,
}

impl FieldError {
    pub fn new(field: impl Into<Cow<'static, str>>, source: InvalidId) -> Self {
        Self {
            field: field.into(),
            source,
        }
    }
}

/// Converts one request field, naming it in the error:
/// `let job_id: JobId = ids::field("job_id", r.job_id)?;`.
pub fn field<T, V>(name: impl Into<Cow<'static, str>>, value: V) -> Result<T, FieldError>
where
    T: TryFrom<V, Error = InvalidId>,
{
    T::try_from(value).map_err(|e| FieldError::new(name, e))
}

/// `TryFrom` the string forms, through the type's `FromStr` (`&str` too unless `no_str`, for
/// types whose derive already gives it).
macro_rules! try_from_text {
    ($name:ident) => {
        impl TryFrom<&str> for $name {
            type Error = InvalidId;

            fn try_from(value: &str) -> Result<Self, InvalidId> {
                value.parse()
            }
        }

        try_from_text!($name, no_str);
    };
    ($name:ident, no_str) => {
        impl TryFrom<&String> for $name {
            type Error = InvalidId;

            fn try_from(value: &String) -> Result<Self, InvalidId> {
                value.parse()
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;

            fn try_from(value: String) -> Result<Self, InvalidId> {
                value.parse()
            }
        }
    };
}

/// A validated string id; `$check` is the validation function in [`super`].
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;

            fn try_from(value: String) -> Result<Self, InvalidId> {
                $check(&value)?;
                Ok(Self(value))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = InvalidId;

            fn try_from(value: &str) -> Result<Self, InvalidId> {
                $check(value)?;
                Ok(Self(value.to_owned()))
            }
        }

        impl TryFrom<&String> for $name {
            type Error = InvalidId;

            fn try_from(value: &String) -> Result<Self, InvalidId> {
                Self::try_from(value.as_str())
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(value: &str) -> Result<Self, InvalidId> {
                Self::try_from(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// Lets a map keyed by this id be looked up with a `&str`.
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_id!(
    /// A job id, `[A-Za-z0-9_-]{1,32}` (see [`super::job_id`]).
    JobId,
    super::job_id
);
string_id!(
    /// A party id, `[A-Za-z0-9_-]{1,32}` (see [`super::party_id`]).
    PartyId,
    super::party_id
);
string_id!(
    /// A component name, `[A-Za-z0-9_-]{1,64}` (see [`super::component`]).
    ComponentName,
    super::component
);

lowercase_enum! {
    parse_err(InvalidId, Role::invalid);
    derive(Serialize, Deserialize, strum::AsRefStr);
    /// One of FATE's roles ([`super::ROLES`]). The variants are declared in alphabetical order
    /// so that ordering roles orders their names, as it did when roles were strings.
    #[serde(try_from = "String", into = "String")]
    pub enum Role {
        Arbiter,
        Guest,
        Host,
        Local,
    }
}

impl Role {
    /// The name, owned; for symmetry with the string ids.
    pub fn into_inner(self) -> String {
        self.as_str().to_owned()
    }

    fn invalid(value: &str) -> InvalidId {
        InvalidId {
            what: "role",
            value: value.chars().take(80).collect(),
            why: "expected guest, host, arbiter or local",
        }
    }
}

// `strum::EnumString` gives `TryFrom<&str>`.
try_from_text!(Role, no_str);

impl From<Role> for String {
    fn from(value: Role) -> String {
        value.into_inner()
    }
}

impl PartialEq<str> for Role {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Role {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A task's version: 0 for the first run, one more for each rerun. Carried as `i32` (proto
/// `int32`, the stores' integer columns) but never negative.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(try_from = "i32", into = "i32")]
pub struct TaskVersion(i32);

impl TaskVersion {
    pub const ZERO: TaskVersion = TaskVersion(0);

    pub fn get(self) -> i32 {
        self.0
    }

    pub fn into_inner(self) -> i32 {
        self.0
    }

    /// The version a rerun gets; `None` past `i32::MAX`.
    pub fn next(self) -> Option<TaskVersion> {
        self.0.checked_add(1).map(TaskVersion)
    }

    fn invalid(value: impl fmt::Display) -> InvalidId {
        InvalidId {
            what: "task version",
            value: value.to_string().chars().take(80).collect(),
            why: "expected an integer from 0 to 2147483647",
        }
    }
}

impl TryFrom<i32> for TaskVersion {
    type Error = InvalidId;

    fn try_from(value: i32) -> Result<Self, InvalidId> {
        if value < 0 {
            return Err(Self::invalid(value));
        }
        Ok(TaskVersion(value))
    }
}

impl TryFrom<i64> for TaskVersion {
    type Error = InvalidId;

    fn try_from(value: i64) -> Result<Self, InvalidId> {
        i32::try_from(value)
            .map_err(|_| Self::invalid(value))
            .and_then(TaskVersion::try_from)
    }
}

impl TryFrom<u32> for TaskVersion {
    type Error = InvalidId;

    fn try_from(value: u32) -> Result<Self, InvalidId> {
        TaskVersion::try_from(i64::from(value))
    }
}

impl FromStr for TaskVersion {
    type Err = InvalidId;

    fn from_str(value: &str) -> Result<Self, InvalidId> {
        // Digits only: no sign, no spaces, so the text form is canonical.
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Self::invalid(value));
        }
        value
            .parse::<i32>()
            .map_err(|_| Self::invalid(value))
            .and_then(TaskVersion::try_from)
    }
}

try_from_text!(TaskVersion);

impl From<TaskVersion> for i32 {
    fn from(value: TaskVersion) -> i32 {
        value.0
    }
}

impl From<TaskVersion> for i64 {
    fn from(value: TaskVersion) -> i64 {
        i64::from(value.0)
    }
}

impl fmt::Display for TaskVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which task: one party's run of one component of a job, at one version.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskKey {
    pub job_id: JobId,
    pub component: ComponentName,
    pub version: TaskVersion,
    pub role: Role,
    pub party_id: PartyId,
}

impl TaskKey {
    /// Converts a request's five key fields, naming the bad one (`job_id`, `component`,
    /// `version`, `role`, `party_id`), in that order.
    pub fn from_fields(
        job_id: String,
        component: String,
        version: i32,
        role: String,
        party_id: String,
    ) -> Result<TaskKey, FieldError> {
        Ok(TaskKey {
            job_id: field("job_id", job_id)?,
            component: field("component", component)?,
            version: field("version", version)?,
            role: field("role", role)?,
            party_id: field("party_id", party_id)?,
        })
    }

    /// How the audit trail names it: `job/component/version/role/party`. [`FromStr`] reads it
    /// back; no part can contain a `/`.
    pub fn audit_key(&self) -> String {
        format!(
            "{}/{}/{}/{}/{}",
            self.job_id, self.component, self.version, self.role, self.party_id
        )
    }
}

/// `job component v0 (role party)`, as the task-controller's logs say it.
impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} v{} ({} {})",
            self.job_id, self.component, self.version, self.role, self.party_id
        )
    }
}

/// Parses [`TaskKey::audit_key`]'s form.
impl FromStr for TaskKey {
    type Err = InvalidId;

    fn from_str(value: &str) -> Result<Self, InvalidId> {
        let parts: Vec<&str> = value.split('/').collect();
        let [job_id, component, version, role, party_id] = parts[..] else {
            return Err(InvalidId {
                what: "task key",
                value: value.chars().take(80).collect(),
                why: "expected job/component/version/role/party",
            });
        };
        Ok(TaskKey {
            job_id: job_id.parse()?,
            component: component.parse()?,
            version: version.parse()?,
            role: role.parse()?,
            party_id: party_id.parse()?,
        })
    }
}

try_from_text!(TaskKey);
