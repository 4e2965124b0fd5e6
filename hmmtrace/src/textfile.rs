//! Errors in the text files users write (scenarios, dashboards): each names the file, line and
//! column, so a bad file is fixed at once.

use std::fmt;

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
        FileError::at(file, text, offset, e.message().trim())
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
