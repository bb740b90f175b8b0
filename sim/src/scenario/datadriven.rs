//! A datadriven transcript runner in the style of etcd's `datadriven` package.
//!
//! A transcript is a file of blocks:
//!
//! ```text
//! # comment lines (kept as they are)
//! command arg1 arg2 key=value key=(1,2,3)
//! ----
//! expected output lines
//! <blank line>
//! ```
//!
//! Each block's command goes to a handler, whose output is compared with the expected
//! lines. With `REWRITE=1` in the environment the file is rewritten with the actual output
//! instead. A mismatch, a script error or a panic fails with the file, the line of the
//! command, and (for a mismatch) expected and actual output.

use crate::runner::panic_text;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// The line that separates a command from its expected output.
const SEPARATOR: &str = "----";
/// Blocks one transcript may hold.
const DIRECTIVES_MAX: usize = 10_000;

/// One argument: `3`, `(1,2)`, `key=value` or `key=(1,2,3)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Argument {
    /// The part before `=`, if any.
    pub key: Option<String>,
    /// The value, or the comma-separated values inside parentheses.
    pub values: Vec<String>,
}

/// One command of a transcript.
#[derive(Clone, Debug)]
pub struct Directive {
    /// 1-based line number of the command in its file.
    pub line: usize,
    /// The command name (the first word).
    pub command: String,
    /// The arguments after the command name, in order.
    pub arguments: Vec<Argument>,
    /// The command line as written.
    pub text: String,
    /// The expected output lines.
    pub expected: Vec<String>,
    /// The lines (comments, blank lines) before the command line.
    prefix: Vec<String>,
}

impl Directive {
    /// Arguments without a key, in order.
    pub fn positional(&self) -> impl Iterator<Item = &Argument> {
        self.arguments
            .iter()
            .filter(|argument| argument.key.is_none())
    }

    /// The argument named `key`, if given.
    #[must_use]
    pub fn keyed(&self, key: &str) -> Option<&Argument> {
        self.arguments
            .iter()
            .find(|argument| argument.key.as_deref() == Some(key))
    }
}

/// A parsed transcript.
#[derive(Clone, Debug)]
pub struct Transcript {
    /// The blocks, in file order.
    pub directives: Vec<Directive>,
    /// Lines after the last block.
    suffix: Vec<String>,
}

/// Splits a command line into words, keeping `(...)` groups (which may hold spaces) whole.
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut depth = 0_usize;
    for character in line.chars() {
        match character {
            '(' => {
                depth += 1;
                word.push(character);
            }
            ')' => {
                depth = depth.checked_sub(1).ok_or("unbalanced ')'")?;
                word.push(character);
            }
            _ if character.is_whitespace() && depth == 0 => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            _ if character.is_whitespace() => {}
            _ => word.push(character),
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".to_owned());
    }
    if !word.is_empty() {
        words.push(word);
    }
    Ok(words)
}

fn argument(word: &str) -> Argument {
    let (key, value) = match word.split_once('=') {
        Some((key, value)) => (Some(key.to_owned()), value),
        None => (None, word),
    };
    let values = match value
        .strip_prefix('(')
        .and_then(|inner| inner.strip_suffix(')'))
    {
        Some("") => Vec::new(),
        Some(inner) => inner
            .split(',')
            .map(|value| value.trim().to_owned())
            .collect(),
        None => vec![value.to_owned()],
    };
    Argument { key, values }
}

impl Transcript {
    /// Parses a transcript.
    ///
    /// # Errors
    /// `line N: reason` for a command without its separator or a malformed argument.
    pub fn parse(text: &str) -> Result<Transcript, String> {
        let lines: Vec<&str> = text.lines().collect();
        let mut directives = Vec::new();
        let mut prefix = Vec::new();
        let mut position = 0;
        while position < lines.len() {
            let line = lines[position];
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                prefix.push(line.to_owned());
                position += 1;
                continue;
            }
            let number = position + 1;
            if lines.get(position + 1).map(|next| next.trim_end()) != Some(SEPARATOR) {
                return Err(format!(
                    "line {number}: expected '{SEPARATOR}' after the command"
                ));
            }
            let mut parts = words(trimmed)
                .map_err(|reason| format!("line {number}: {reason}"))?
                .into_iter();
            let command = parts.next().expect("a non-empty line has a first word");
            let arguments = parts.map(|word| argument(&word)).collect();
            position += 2;
            let mut expected = Vec::new();
            while let Some(output) = lines.get(position) {
                position += 1;
                if output.trim().is_empty() {
                    break;
                }
                expected.push(output.trim_end().to_owned());
            }
            if directives.len() >= DIRECTIVES_MAX {
                return Err(format!(
                    "line {number}: more than {DIRECTIVES_MAX} commands"
                ));
            }
            directives.push(Directive {
                line: number,
                command,
                arguments,
                text: trimmed.to_owned(),
                expected,
                prefix: std::mem::take(&mut prefix),
            });
        }
        Ok(Transcript {
            directives,
            suffix: prefix,
        })
    }

    /// The transcript as text, with `outputs[i]` as the output of directive `i`.
    ///
    /// # Panics
    /// If there is not one output per directive.
    #[must_use]
    pub fn render(&self, outputs: &[Vec<String>]) -> String {
        assert_eq!(
            outputs.len(),
            self.directives.len(),
            "one output per directive"
        );
        let mut text = String::new();
        for (directive, output) in self.directives.iter().zip(outputs) {
            for line in &directive.prefix {
                let _ = writeln!(text, "{line}");
            }
            let _ = writeln!(text, "{}\n{SEPARATOR}", directive.text);
            for line in output {
                let _ = writeln!(text, "{line}");
            }
            text.push('\n');
        }
        for line in &self.suffix {
            let _ = writeln!(text, "{line}");
        }
        while text.ends_with("\n\n") {
            text.pop();
        }
        text
    }
}

/// Output as the lines a transcript holds: trailing spaces trimmed, never empty (`ok`), and
/// no blank line (a blank line would end the block).
fn normalize(output: &str) -> Vec<String> {
    let lines: Vec<String> = output
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    if lines.is_empty() {
        vec!["ok".to_owned()]
    } else {
        lines
    }
}

/// True if the environment asks for transcripts to be rewritten.
#[must_use]
pub fn rewrite_requested() -> bool {
    std::env::var_os("REWRITE").is_some_and(|value| !value.is_empty() && value != "0")
}

/// Runs every block of the transcript at `path` through `handler`, and compares (or, with
/// `REWRITE=1`, rewrites) the outputs. A handler returns its output, or `Err` for a script
/// error (an unknown command, a bad argument).
///
/// # Panics
/// On the first mismatch, script error or panic, naming the file and the command's line.
pub fn run_file<H>(path: &Path, mut handler: H)
where
    H: FnMut(&Directive) -> Result<String, String>,
{
    let name = path.display();
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{name}: {error}"));
    let transcript = Transcript::parse(&text).unwrap_or_else(|error| panic!("{name}:{error}"));
    let rewrite = rewrite_requested();
    let mut outputs = Vec::with_capacity(transcript.directives.len());
    for directive in &transcript.directives {
        let line = directive.line;
        let output = match catch_unwind(AssertUnwindSafe(|| handler(directive))) {
            Ok(Ok(output)) => normalize(&output),
            Ok(Err(error)) => panic!("{name}:{line}: `{}`: {error}", directive.text),
            Err(payload) => panic!(
                "{name}:{line}: `{}` panicked: {}",
                directive.text,
                panic_text(&*payload)
            ),
        };
        if !rewrite && output != directive.expected {
            panic!(
                "{name}:{line}: output of `{}` differs (REWRITE=1 rewrites the file)\n\
                 --- expected\n{}\n--- actual\n{}\n",
                directive.text,
                directive.expected.join("\n"),
                output.join("\n")
            );
        }
        outputs.push(output);
    }
    if rewrite {
        let rendered = transcript.render(&outputs);
        if rendered != text {
            std::fs::write(path, rendered).unwrap_or_else(|error| panic!("{name}: {error}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blocks_and_arguments() {
        let text = "# header\n\ncmd 1 (2, 3) key=v list=(4,5)\n----\nout 1\nout 2\n\n\
                    # tail comment\nnext\n----\nok\n";
        let transcript = Transcript::parse(text).unwrap();
        assert_eq!(transcript.directives.len(), 2);
        let first = &transcript.directives[0];
        assert_eq!(first.line, 3);
        assert_eq!(first.command, "cmd");
        assert_eq!(first.expected, vec!["out 1", "out 2"]);
        let positional: Vec<_> = first.positional().map(|a| a.values.clone()).collect();
        assert_eq!(
            positional,
            vec![vec!["1".to_owned()], vec!["2".to_owned(), "3".to_owned()]]
        );
        assert_eq!(first.keyed("key").unwrap().values, vec!["v"]);
        assert_eq!(first.keyed("list").unwrap().values, vec!["4", "5"]);
        assert_eq!(transcript.directives[1].line, 9);
        let outputs = vec![first.expected.clone(), vec!["ok".to_owned()]];
        assert_eq!(transcript.render(&outputs), text);
    }

    #[test]
    fn a_command_needs_its_separator() {
        let error = Transcript::parse("cmd\nout\n").unwrap_err();
        assert!(error.starts_with("line 1:"), "{error}");
    }
}
