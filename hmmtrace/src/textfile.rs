//! Errors in the text files users write (scenarios, dashboards): each names the file, line and
//! column, so a bad file is fixed at once. [`Node`] keeps the position of every key and value of
//! a TOML document, so that an error found after parsing (by a serde type or a check) still
//! points at the key or value it is about.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

/// A problem at a position of a text file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl FileError {
    /// The error at byte `offset` of `text`.
    pub fn at(file: &str, text: &str, offset: usize, message: impl Into<String>) -> FileError {
        let (line, column) = line_col(text, offset);
        FileError {
            file: file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    /// A TOML syntax or type error, at the position the parser reports.
    pub fn toml(file: &str, text: &str, e: &toml::de::Error) -> FileError {
        let offset = e.span().map_or(0, |s| s.start);
        let message = e.message().trim();
        // How toml hands a date to a visitor that is not expecting one.
        let message = if message.contains("$__toml_private_datetime") {
            "a date or time is not a value this file takes"
        } else {
            message
        };
        FileError::at(file, text, offset, message)
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for FileError {}

/// 1-based line and column (in characters) of byte `offset`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The text of a built-in (by name, from `builtin`) or of a file (by path), and the name to use
/// for it in errors. `what` ("scenario", "dashboard") words the message when it is neither.
pub fn builtin_or_file(
    what: &str,
    builtin: &[(&'static str, &'static str)],
    name_or_path: &str,
) -> anyhow::Result<(String, std::borrow::Cow<'static, str>)> {
    if let Some((name, text)) = builtin.iter().find(|(n, _)| *n == name_or_path) {
        return Ok((format!("<builtin {name}>"), (*text).into()));
    }
    let path = std::path::Path::new(name_or_path);
    if !path.exists() {
        let names: Vec<&str> = builtin.iter().map(|(n, _)| *n).collect();
        anyhow::bail!(
            "no built-in {what} or file named '{name_or_path}' (built-ins: {})",
            names.join(", ")
        );
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {what} file {}: {e}", path.display()))?;
    Ok((path.display().to_string(), text.into()))
}

/// A TOML value with the byte span of every key and value in it. toml's `Spanned` cannot reach
/// into what serde buffers (an internally tagged enum, a flattened struct), so files whose
/// schema uses those are first read as a `Node`, then each part is deserialized from
/// [`Node::to_value`], and an error is placed with [`Node::locate`].
#[derive(Clone, Debug)]
pub enum Node {
    Table(Vec<(Spanned<String>, Spanned<Node>)>),
    Array(Vec<Spanned<Node>>),
    Value(toml::Value),
}

impl Node {
    /// The value without positions.
    pub fn to_value(&self) -> toml::Value {
        match self {
            Node::Table(entries) => toml::Value::Table(
                entries
                    .iter()
                    .map(|(k, v)| (k.get_ref().clone(), v.get_ref().to_value()))
                    .collect(),
            ),
            Node::Array(items) => {
                toml::Value::Array(items.iter().map(|i| i.get_ref().to_value()).collect())
            }
            Node::Value(v) => v.clone(),
        }
    }

    /// The value of `key` in a table.
    pub fn get(&self, key: &str) -> Option<&Spanned<Node>> {
        match self {
            Node::Table(entries) => entries
                .iter()
                .find(|(k, _)| k.get_ref() == key)
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Where in this table a serde error message is about: the key it names (`unknown field`,
    /// `duplicate field`), or the value it quotes (`unknown variant`, `invalid type`, `invalid
    /// value`). `None` when the message names neither (`missing field`: the table itself).
    pub fn locate(&self, message: &str) -> Option<std::ops::Range<usize>> {
        let Node::Table(entries) = self else {
            return None;
        };
        let quoted = |after: &str| -> Option<&str> {
            let rest = message.split_once(after)?.1;
            let rest = rest.strip_prefix('`')?;
            Some(&rest[..rest.find('`')?])
        };
        for prefix in ["unknown field ", "duplicate field "] {
            if let Some(key) = quoted(prefix) {
                return entries
                    .iter()
                    .find(|(k, _)| k.get_ref() == key)
                    .map(|(k, _)| k.span());
            }
        }
        // serde quotes the unexpected value: `unknown variant `x``, `invalid type: string "x"`,
        // `invalid type: integer `3``, `invalid value: integer `0``, ...
        let unexpected = quoted("unknown variant ").map(|v| toml::Value::String(v.into()));
        let unexpected = unexpected.or_else(|| {
            let (_, rest) = message
                .split_once("invalid type: ")
                .or_else(|| message.split_once("invalid value: "))?;
            if let Some(s) = rest.strip_prefix("string \"") {
                return Some(toml::Value::String(s[..s.find('"')?].to_string()));
            }
            let text = rest.split_once('`')?.1;
            let text = &text[..text.find('`')?];
            text.parse::<i64>()
                .map(toml::Value::Integer)
                .or_else(|_| text.parse::<bool>().map(toml::Value::Boolean))
                .or_else(|_| text.parse::<f64>().map(toml::Value::Float))
                .ok()
        });
        let unexpected = unexpected?;
        entries
            .iter()
            .find(|(_, v)| matches!(v.get_ref(), Node::Value(x) if *x == unexpected))
            .map(|(_, v)| v.span())
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a TOML value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Value(toml::Value::Boolean(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Value(toml::Value::Integer(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Node, E> {
                let v = i64::try_from(v).map_err(|_| E::custom("an integer out of range"))?;
                Ok(Node::Value(toml::Value::Integer(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Value(toml::Value::Float(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Value(toml::Value::String(v.to_string())))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    entries.push((key, map.next_value::<Spanned<Node>>()?));
                }
                Ok(Node::Table(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<Node>>()? {
                    items.push(item);
                }
                Ok(Node::Array(items))
            }
        }
        d.deserialize_any(NodeVisitor)
    }
}
