//! [`lowercase_enum!`] declares a closed set of names (the job and task statuses, the roles) as
//! an enum whose values are spelt in lowercase wherever they are stored or shown. It derives the
//! value traits and strum's `Display`, `FromStr` (failing with the set's own error),
//! `&'static str` and iteration, and adds `ALL` and `as_str`, so every set reads the same way.

/// `lowercase_enum! { parse_err(Error, error_fn); derive(Extra, ..); /// doc  pub enum E { .. } }`:
/// `error_fn(&str) -> Error` makes the error for a name outside the set; `derive` adds derives
/// (whose helper attributes, e.g. `#[serde]`, may follow the doc).
macro_rules! lowercase_enum {
    (
        parse_err($err:ty, $err_fn:path);
        derive($($extra:path),* $(,)?);
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident),+ $(,)?
        }
    ) => {
        #[derive(
            Clone,
            Copy,
            Debug,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            strum::Display,
            strum::EnumString,
            strum::IntoStaticStr,
            strum::EnumIter,
            $($extra),*
        )]
        #[strum(serialize_all = "lowercase", parse_err_ty = $err, parse_err_fn = $err_fn)]
        $(#[$meta])*
        $vis enum $name {
            $($(#[$variant_meta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order (the same as [`strum::IntoEnumIterator::iter`]).
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The name stored and shown, e.g. `"running"`.
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }
    };
}
