//! A strict JSON reader for submissions: duplicate keys are refused anywhere, naming their full
//! path, and nesting deeper than [`MAX_DEPTH`] is refused while reading, so no later walk over
//! the document can recurse further.

use std::cell::Cell;
use std::fmt::{self, Write as _};

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{MAX_DEPTH, SpecError, err};

/// Parses JSON, refusing duplicate keys anywhere (a duplicate component name would otherwise
/// silently replace the first one) and nesting deeper than [`MAX_DEPTH`]; the error names
/// `field`.
pub fn parse_json_strict(field: &str, text: &str) -> Result<Value, SpecError> {
    let too_deep = Cell::new(false);
    let mut de = serde_json::Deserializer::from_str(text);
    let root = StrictValue {
        at: Path {
            parent: None,
            segment: Segment::Root,
            depth: 0,
        },
        too_deep: &too_deep,
    };
    let parsed = de::DeserializeSeed::deserialize(root, &mut de);
    let parsed = parsed.and_then(|value| de.end().map(|()| value));
    parsed.map_err(|e| {
        if too_deep.get() {
            err(field, e.to_string())
        } else {
            err(field, format!("not valid JSON: {e}"))
        }
    })
}

/// One step of the path to a value, for error messages.
#[derive(Clone, Copy)]
enum Segment<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

/// Where a value sits in the document: a list on the stack, rendered only for an error, so
/// reading a value costs nothing for the length of its path.
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    segment: Segment<'a>,
    /// How many arrays and objects enclose the value.
    depth: usize,
}

impl Path<'_> {
    /// `components.a.input[0]`-style.
    fn render(&self) -> String {
        let mut segments = Vec::new();
        let mut at = Some(self);
        while let Some(p) = at {
            segments.push(p.segment);
            at = p.parent;
        }
        let mut out = String::new();
        for segment in segments.iter().rev() {
            match segment {
                Segment::Root => {}
                Segment::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Segment::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
            }
        }
        out
    }
}

/// Reads any JSON value as a [`Value`], refusing duplicate keys and deep nesting.
struct StrictValue<'a> {
    at: Path<'a>,
    /// Set when the error is the nesting depth (so it is not called invalid JSON).
    too_deep: &'a Cell<bool>,
}

impl StrictValue<'_> {
    /// The depth of the array or object being entered, or the error if it is one too many.
    fn enter<E: de::Error>(&self) -> Result<usize, E> {
        let depth = self.at.depth + 1;
        if depth > MAX_DEPTH {
            self.too_deep.set(true);
            return Err(E::custom(format!(
                "nested too deeply: more than {MAX_DEPTH} levels of arrays and objects"
            )));
        }
        Ok(depth)
    }
}

impl<'de> de::DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.enter()?;
        let mut items = Vec::new();
        loop {
            let item = StrictValue {
                at: Path {
                    parent: Some(&self.at),
                    segment: Segment::Index(items.len()),
                    depth,
                },
                too_deep: self.too_deep,
            };
            let Some(item) = seq.next_element_seed(item)? else {
                break;
            };
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.enter()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = Path {
                parent: Some(&self.at),
                segment: Segment::Key(&key),
                depth,
            };
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "duplicate key {:?}",
                    at.render()
                )));
            }
            let value = map.next_value_seed(StrictValue {
                at,
                too_deep: self.too_deep,
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}
