//! Typed policy parameters: one struct per table of parameters, declared once with
//! [`crate::params!`], whose fields carry their default and a doc line. From that one
//! declaration come the serde reading (unknown keys refused with the valid ones listed), the
//! defaults, and every listing of the parameters: `gpushare policies`, README's table
//! ([`crate::docs`]) and the keys a policy splits from the pool's.

/// One parameter as documented: its key, its default as TOML (`None`: unset by default) and
/// what it does.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamDoc {
    pub key: &'static str,
    pub default: Option<String>,
    pub doc: String,
}

/// A table of parameters declared with [`crate::params!`].
pub trait Params: serde::de::DeserializeOwned + Default {
    /// Every parameter, in declaration order, with its real default.
    fn docs() -> Vec<ParamDoc>;

    /// The keys, for splitting a `[policy]` table among its readers.
    fn keys() -> Vec<&'static str> {
        Self::docs().iter().map(|d| d.key).collect()
    }
}

/// A default as the TOML a user would write (`None`: no value).
pub trait ShowDefault {
    fn show(&self) -> Option<String>;
}

impl ShowDefault for f64 {
    fn show(&self) -> Option<String> {
        Some(if self.is_infinite() {
            if *self > 0.0 { "inf".into() } else { "-inf".into() }
        } else {
            format!("{self}")
        })
    }
}

macro_rules! show_display {
    ($($t:ty),*) => {$(
        impl ShowDefault for $t {
            fn show(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )*};
}
show_display!(u32, u64, usize, bool);

impl ShowDefault for String {
    fn show(&self) -> Option<String> {
        Some(format!("{self:?}"))
    }
}

impl<T: ShowDefault> ShowDefault for Option<T> {
    fn show(&self) -> Option<String> {
        self.as_ref().and_then(ShowDefault::show)
    }
}

impl<T: ShowDefault> ShowDefault for Vec<T> {
    fn show(&self) -> Option<String> {
        let items: Vec<String> = self.iter().filter_map(ShowDefault::show).collect();
        Some(format!("[{}]", items.join(", ")))
    }
}

impl<T: ShowDefault> ShowDefault for std::collections::BTreeMap<String, T> {
    fn show(&self) -> Option<String> {
        let items: Vec<String> = self
            .iter()
            .filter_map(|(k, v)| v.show().map(|v| format!("{k} = {v}")))
            .collect();
        Some(if items.is_empty() {
            "{}".into()
        } else {
            format!("{{ {} }}", items.join(", "))
        })
    }
}

/// Declares a table of parameters: a struct whose fields each have a doc comment and a default
/// (`name: Type = default,`). It derives serde's `Deserialize` (unknown keys refused, missing
/// ones defaulted), `Default`, and [`Params`]; every field type must implement [`ShowDefault`].
#[macro_export]
macro_rules! params {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])+
                $field:ident : $ty:ty = $default:expr
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        $vis struct $name {
            $( $(#[doc = $doc])+ pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $( $field: $default, )* }
            }
        }

        impl $crate::params::Params for $name {
            fn docs() -> Vec<$crate::params::ParamDoc> {
                let d = Self::default();
                vec![$(
                    $crate::params::ParamDoc {
                        key: stringify!($field),
                        default: $crate::params::ShowDefault::show(&d.$field),
                        doc: [$($doc),+].iter().map(|l| l.trim()).collect::<Vec<_>>().join(" "),
                    },
                )*]
            }
        }
    };
}

/// A table with no parameters (a policy that has none of its own).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

impl Params for NoParams {
    fn docs() -> Vec<ParamDoc> {
        Vec::new()
    }
}
