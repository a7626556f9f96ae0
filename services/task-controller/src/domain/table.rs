//! What makes an uploaded CSV a table: the rules of FATE-Flow's upload conf (`head`,
//! `meta.delimiter`, `meta.match_id_name` / `sample_id_name`, `meta.label_name`), checked
//! over the whole file before anything is registered. Every refusal names the line or the
//! column at fault; the caller stores nothing when this says no. Pure: it reads lines it is
//! given and decides.

use std::collections::HashMap;
use std::io::BufRead;

use serde_json::{Map, Value};

/// FATE's `meta`, as far as fedflow reads it (the object itself is kept verbatim).
#[derive(Debug, Clone, PartialEq)]
pub struct TableMeta {
    pub delimiter: String,
    /// The id column (`match_id_name`, else `sample_id_name`, else the first column).
    pub id_name: Option<String>,
    pub label_name: Option<String>,
}

impl TableMeta {
    /// Reads `meta`; the error names the field.
    pub fn from_json(meta: &Map<String, Value>) -> Result<TableMeta, String> {
        let text = |key: &str| -> Result<Option<String>, String> {
            match meta.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!("meta.{key}: expected a string, got {other}")),
            }
        };
        let delimiter = text("delimiter")?.unwrap_or_else(|| ",".to_owned());
        if delimiter.contains(['\n', '\r']) {
            return Err("meta.delimiter: a line break cannot be a delimiter".into());
        }
        Ok(TableMeta {
            delimiter,
            id_name: text("match_id_name")?.or(text("sample_id_name")?),
            label_name: text("label_name")?,
        })
    }
}

/// What the checked file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub columns: Vec<String>,
    pub row_count: u64,
    pub id_name: String,
    pub label_name: Option<String>,
}

/// Checks a CSV with a header line: every column named once, the id and label columns
/// present, every row as wide as the header, every id unique and non-empty. Empty lines at
/// the end are ignored; an empty line inside is a ragged row.
pub fn check(reader: impl BufRead, meta: &TableMeta) -> Result<Shape, String> {
    let mut lines = reader.split(b'\n');
    let header = match lines.next() {
        Some(line) => line_text(line, 1)?,
        None => return Err("the file is empty: a header line is needed".into()),
    };
    let columns: Vec<String> = header
        .split(meta.delimiter.as_str())
        .map(|c| c.trim().to_owned())
        .collect();
    if columns.iter().all(String::is_empty) {
        return Err("line 1: the header is empty".into());
    }
    let mut seen = HashMap::new();
    for (i, column) in columns.iter().enumerate() {
        if column.is_empty() {
            return Err(format!("line 1: column {} has no name", i + 1));
        }
        if let Some(first) = seen.insert(column.as_str(), i) {
            return Err(format!(
                "line 1: column {column:?} appears twice (columns {} and {})",
                first + 1,
                i + 1
            ));
        }
    }
    let position = |name: &str, what: &str| {
        columns.iter().position(|c| c == name).ok_or_else(|| {
            format!(
                "line 1: the header has no {what} column {name:?} (columns: {})",
                columns.join(", ")
            )
        })
    };
    let id_name = meta.id_name.clone().unwrap_or_else(|| columns[0].clone());
    let id_at = position(&id_name, "id")?;
    if let Some(label) = &meta.label_name {
        position(label, "label")?;
    }
    let mut ids: HashMap<String, u64> = HashMap::new();
    let mut row_count = 0u64;
    let mut blank_at: Option<u64> = None;
    for (n, line) in lines.enumerate() {
        let number = n as u64 + 2;
        let text = line_text(line, number)?;
        if text.is_empty() {
            blank_at.get_or_insert(number);
            continue;
        }
        if let Some(blank) = blank_at {
            return Err(format!("line {blank}: an empty row inside the table"));
        }
        let fields: Vec<&str> = text.split(meta.delimiter.as_str()).collect();
        if fields.len() != columns.len() {
            return Err(format!(
                "line {number}: {} fields, but the header has {} columns",
                fields.len(),
                columns.len()
            ));
        }
        let id = fields[id_at].trim();
        if id.is_empty() {
            return Err(format!("line {number}: the id column {id_name:?} is empty"));
        }
        if let Some(first) = ids.insert(id.to_owned(), number) {
            return Err(format!(
                "line {number}: id {id:?} (column {id_name:?}) already on line {first}"
            ));
        }
        row_count += 1;
    }
    Ok(Shape {
        columns,
        row_count,
        id_name,
        label_name: meta.label_name.clone(),
    })
}

fn line_text(line: std::io::Result<Vec<u8>>, number: u64) -> Result<String, String> {
    let bytes = line.map_err(|e| format!("line {number}: cannot be read: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("line {number}: not UTF-8 text"))?;
    Ok(text.strip_suffix('\r').unwrap_or(&text).to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn meta(v: Value) -> TableMeta {
        TableMeta::from_json(v.as_object().expect("an object")).expect("valid meta")
    }

    fn run(csv: &str, m: Value) -> Result<Shape, String> {
        check(csv.as_bytes(), &meta(m))
    }

    #[test]
    fn a_good_table_is_counted() {
        let shape = run(
            "id,y,x0\n1,0,0.5\n2,1,0.25\n\n",
            json!({"match_id_name": "id", "label_name": "y"}),
        )
        .expect("accepted");
        assert_eq!(shape.columns, ["id", "y", "x0"]);
        assert_eq!(shape.row_count, 2);
        assert_eq!(shape.id_name, "id");
    }

    #[test]
    fn every_bad_table_is_refused_naming_the_line_or_column() {
        let cases = [
            ("", json!({}), "empty"),
            ("id,x\n1,2\n3\n", json!({}), "line 3: 1 fields"),
            ("id,x\n1,2\n3,4,5\n", json!({}), "line 3: 3 fields"),
            (
                "uid,x\n1,2\n",
                json!({"match_id_name": "id"}),
                "no id column \"id\"",
            ),
            (
                "id,x\n1,2\n",
                json!({"label_name": "y"}),
                "no label column \"y\"",
            ),
            ("id,x\n1,2\n2,3\n1,4\n", json!({}), "line 4: id \"1\""),
            ("id,x,x\n1,2,3\n", json!({}), "appears twice"),
            ("id,x\n1,2\n\n3,4\n", json!({}), "line 3: an empty row"),
            ("id,x\n,2\n", json!({}), "line 2: the id column"),
        ];
        for (csv, m, expected) in cases {
            let err = run(csv, m.clone()).expect_err(csv);
            assert!(err.contains(expected), "{csv:?} {m}: {err}");
        }
    }

    #[test]
    fn the_delimiter_and_line_endings_follow_the_meta() {
        let shape = run(
            "id;y\r\n1;0\r\n",
            json!({"delimiter": ";", "label_name": "y"}),
        )
        .expect("accepted");
        assert_eq!(shape.columns, ["id", "y"]);
        assert_eq!(shape.row_count, 1);
        assert!(TableMeta::from_json(json!({"delimiter": 1}).as_object().expect("obj")).is_err());
    }
}
