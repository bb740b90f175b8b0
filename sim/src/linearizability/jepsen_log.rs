//! A reader for the Jepsen etcd compare-and-set register logs (Porcupine's `jepsen` corpus).

use std::collections::BTreeMap;

use super::edn::EdnValue;
use super::event::Event;
use super::history::History;
use super::parse_error::{history_from_events, ParseError};
use super::register::{RegisterInput, RegisterOutput};

/// Parses a Jepsen log of a compare-and-set register into a history.
///
/// The lines that matter look like `INFO  jepsen.util - P<TAB>:invoke<TAB>:read<TAB>nil`:
/// process `P`, then `:invoke`, `:ok`, `:fail` or `:info`, then `:read`, `:write` or `:cas`,
/// then the value (`[FROM TO]` for a cas, the value read or `nil` for a read's `:ok`). Fields
/// may be separated by tabs or spaces. Lines without `jepsen.util - ` followed by a numeric
/// process (set-up, the nemesis) are skipped.
///
/// `:fail` on a cas means the compare did not match ([`RegisterOutput::Fail`]). Any other
/// `:fail` (such as a read's `:timed-out`), an `:info`, and an invocation never completed
/// have unknown outcomes.
pub fn parse_jepsen_log(text: &str) -> Result<History<RegisterInput, RegisterOutput>, ParseError> {
    let mut events = Vec::new();
    // The line of each event, to place errors found when pairing events.
    let mut event_lines = Vec::new();
    let mut in_flight: BTreeMap<u64, RegisterInput> = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let Some((process, fields)) = split_line(line) else {
            continue;
        };
        let error = |message: String| ParseError::new(number, message);
        let values = EdnValue::parse_all(fields).map_err(&error)?;
        let [kind, function, value] = values.as_slice() else {
            return Err(error(format!(
                "expected 3 fields after the process, found {}",
                values.len()
            )));
        };
        let kind = kind
            .as_keyword()
            .ok_or_else(|| error(format!("bad type {kind:?}")))?;
        let function = function
            .as_keyword()
            .ok_or_else(|| error(format!("bad function {function:?}")))?;
        let event = if kind == "invoke" {
            let input = parse_input(function, value).map_err(&error)?;
            if in_flight.insert(process, input).is_some() {
                return Err(error(format!("process {process} invokes twice")));
            }
            Event::invoke(process, input)
        } else {
            let input = in_flight
                .remove(&process)
                .ok_or_else(|| error(format!("process {process} completes nothing")))?;
            if function != function_name(&input) {
                return Err(error(format!("{function} completes a {input:?}")));
            }
            parse_completion(process, kind, &input, value).map_err(&error)?
        };
        events.push(event);
        event_lines.push(number);
    }
    history_from_events(events, &event_lines)
}

/// Splits a history line into its process and the fields after it; `None` for other lines.
fn split_line(line: &str) -> Option<(u64, &str)> {
    let (_, rest) = line.split_once("jepsen.util")?;
    let rest = rest.trim_start().strip_prefix('-')?.trim_start();
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (process, fields) = rest.split_at(end);
    if process.is_empty() || !process.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((process.parse().ok()?, fields))
}

fn function_name(input: &RegisterInput) -> &'static str {
    match input {
        RegisterInput::Read => "read",
        RegisterInput::Write(_) => "write",
        RegisterInput::Cas { .. } => "cas",
    }
}

fn parse_input(function: &str, value: &EdnValue) -> Result<RegisterInput, String> {
    match (function, value) {
        ("read", EdnValue::Nil) => Ok(RegisterInput::Read),
        ("write", EdnValue::Int(v)) => Ok(RegisterInput::Write(*v)),
        ("cas", EdnValue::Vector(pair)) => match pair.as_slice() {
            [EdnValue::Int(from), EdnValue::Int(to)] => Ok(RegisterInput::Cas {
                from: *from,
                to: *to,
            }),
            _ => Err(format!("bad cas value {value:?}")),
        },
        _ => Err(format!("bad invocation :{function} {value:?}")),
    }
}

/// The event for a completion of type `kind` of `input` by `process`.
fn parse_completion(
    process: u64,
    kind: &str,
    input: &RegisterInput,
    value: &EdnValue,
) -> Result<Event<RegisterInput, RegisterOutput>, String> {
    let echoes_input = || parse_input(function_name(input), value).ok() == Some(*input);
    match (kind, input) {
        ("ok", RegisterInput::Read) => match value {
            EdnValue::Nil => Ok(Event::ret(process, RegisterOutput::Value(None))),
            EdnValue::Int(v) => Ok(Event::ret(process, RegisterOutput::Value(Some(*v)))),
            _ => Err(format!("bad read result {value:?}")),
        },
        ("ok", _) if echoes_input() => Ok(Event::ret(process, RegisterOutput::Ok)),
        ("fail", RegisterInput::Cas { .. }) if echoes_input() => {
            Ok(Event::ret(process, RegisterOutput::Fail))
        }
        ("ok", _) | ("fail", RegisterInput::Cas { .. }) => {
            Err(format!(":{kind} value {value:?} does not match {input:?}"))
        }
        ("info" | "fail", _) => Ok(Event::unknown(process)),
        _ => Err(format!("bad type :{kind}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::Operation;

    #[test]
    fn parses_all_line_kinds() {
        let log = "INFO  jepsen.core - setting up\n\
            INFO  jepsen.util - 0\t:invoke\t:write\t4\n\
            INFO  jepsen.util - 1   :invoke :cas    [4 5]\n\
            INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n\
            INFO  jepsen.util - 2\t:invoke\t:read\tnil\n\
            INFO  jepsen.util - 0\t:ok\t:write\t4\n\
            INFO  jepsen.util - 1\t:fail\t:cas\t[4 5]\n\
            INFO  jepsen.util - 2\t:fail\t:read\t:timed-out\n\
            INFO  jepsen.util - 3\t:invoke\t:cas\t[1 2]\n\
            INFO  jepsen.util - 3\t:info\t:cas\t:timed-out\n\
            INFO  jepsen.util - 4\t:invoke\t:read\tnil\n\
            INFO  jepsen.util - 4\t:ok\t:read\tnil\n\
            INFO  jepsen.util - 5\t:invoke\t:write\t7\n";
        let history = parse_jepsen_log(log).expect("well formed");
        assert_eq!(
            history.operations(),
            &[
                Operation::completed(0, RegisterInput::Write(4), 0, 3, RegisterOutput::Ok),
                Operation::completed(
                    1,
                    RegisterInput::Cas { from: 4, to: 5 },
                    1,
                    4,
                    RegisterOutput::Fail
                ),
                Operation::unknown(2, RegisterInput::Read, 2),
                Operation::unknown(3, RegisterInput::Cas { from: 1, to: 2 }, 6),
                Operation::completed(4, RegisterInput::Read, 8, 9, RegisterOutput::Value(None)),
                Operation::unknown(5, RegisterInput::Write(7), 10),
            ]
        );
    }

    #[test]
    fn reports_malformed_lines() {
        let cases = [
            ("INFO  jepsen.util - 0\t:invoke\t:write", 1),
            ("INFO  jepsen.util - 0\t:invoke\t:write\tx", 1),
            ("INFO  jepsen.util - 0\t:invoke\t:frob\t1", 1),
            ("INFO  jepsen.util - 0\t:ok\t:write\t1", 1),
            ("INFO  jepsen.util - 0\t:invoke\t:cas\t[1]", 1),
            ("INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.util - 0\t:ok\t:read\t1", 2),
            ("INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.util - 0\t:ok\t:write\t2", 2),
            ("x\nINFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:invoke\t:read\tnil", 3),
            ("INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:done\t:read\t1", 2),
        ];
        for (log, line) in cases {
            let error = parse_jepsen_log(log).expect_err(log);
            assert_eq!(error.line, line, "{log:?}: {error}");
        }
    }
}
