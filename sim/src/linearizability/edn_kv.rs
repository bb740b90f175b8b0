//! A reader for key-value histories written one EDN map a line (Porcupine's `kv` corpus).

use std::collections::BTreeMap;

use super::edn::EdnValue;
use super::event::Event;
use super::history::History;
use super::kv::{KvInput, KvOutput};
use super::parse_error::{history_from_events, ParseError};

/// Parses a key-value history written one EDN map a line:
/// `{:process P, :type :invoke|:ok|:fail|:info, :f :get|:put|:append|:cas, :key "K", :value V}`.
///
/// `V` is a string (`nil` on a get's invocation; `nil` read as `""` elsewhere), or
/// `[EXPECTED NEW]` for a cas. `:fail` on a cas means the compare did not match
/// ([`KvOutput::Fail`]); on any other operation it means the operation had no effect, and it
/// is left out. `:info`, and an invocation never completed, have unknown outcomes. Blank
/// lines are skipped; a key may be written as a string or an integer.
pub fn parse_edn_kv(text: &str) -> Result<History<KvInput, KvOutput>, ParseError> {
    let mut events = Vec::new();
    let mut event_lines = Vec::new();
    let mut in_flight: BTreeMap<u64, KvInput> = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let error = |message: String| ParseError::new(number, message);
        let map = EdnValue::parse(line).map_err(&error)?;
        let field = |name: &str| map.get(name).ok_or_else(|| error(format!("no :{name}")));
        let process = match field("process")? {
            EdnValue::Int(p) => u64::try_from(*p).map_err(|e| error(format!("process: {e}")))?,
            other => return Err(error(format!("bad process {other:?}"))),
        };
        let kind = field("type")?;
        let kind = kind
            .as_keyword()
            .ok_or_else(|| error(format!("bad type {kind:?}")))?;
        let function = field("f")?;
        let function = function
            .as_keyword()
            .ok_or_else(|| error(format!("bad function {function:?}")))?;
        let key = match field("key")? {
            EdnValue::Str(key) => key.clone(),
            EdnValue::Int(key) => key.to_string(),
            other => return Err(error(format!("bad key {other:?}"))),
        };
        let value = map.get("value").unwrap_or(&EdnValue::Nil);
        let event = if kind == "invoke" {
            let input = parse_input(function, key, value).map_err(&error)?;
            if in_flight.insert(process, input.clone()).is_some() {
                return Err(error(format!("process {process} invokes twice")));
            }
            Event::invoke(process, input)
        } else {
            let input = in_flight
                .remove(&process)
                .ok_or_else(|| error(format!("process {process} completes nothing")))?;
            if function != function_name(&input) || key != input.key() {
                return Err(error(format!(":{function} on {key:?} completes {input:?}")));
            }
            parse_completion(process, kind, &input, value).map_err(&error)?
        };
        events.push(event);
        event_lines.push(number);
    }
    history_from_events(events, &event_lines)
}

fn function_name(input: &KvInput) -> &'static str {
    match input {
        KvInput::Get { .. } => "get",
        KvInput::Put { .. } => "put",
        KvInput::Append { .. } => "append",
        KvInput::Cas { .. } => "cas",
    }
}

/// A string value; `nil` reads as the empty string (a missing key).
fn string(value: &EdnValue) -> Result<String, String> {
    match value {
        EdnValue::Str(s) => Ok(s.clone()),
        EdnValue::Nil => Ok(String::new()),
        other => Err(format!("expected a string, found {other:?}")),
    }
}

fn parse_input(function: &str, key: String, value: &EdnValue) -> Result<KvInput, String> {
    match function {
        "get" => Ok(KvInput::Get { key }),
        "put" => Ok(KvInput::Put {
            key,
            value: string(value)?,
        }),
        "append" => Ok(KvInput::Append {
            key,
            value: string(value)?,
        }),
        "cas" => match value {
            EdnValue::Vector(pair) if pair.len() == 2 => Ok(KvInput::Cas {
                key,
                expected: string(&pair[0])?,
                new: string(&pair[1])?,
            }),
            other => Err(format!("bad cas value {other:?}")),
        },
        other => Err(format!("unknown function :{other}")),
    }
}

/// The event for a completion of type `kind` of `input` by `process`.
fn parse_completion(
    process: u64,
    kind: &str,
    input: &KvInput,
    value: &EdnValue,
) -> Result<Event<KvInput, KvOutput>, String> {
    match (kind, input) {
        ("ok", KvInput::Get { .. }) => Ok(Event::ret(process, KvOutput::Value(string(value)?))),
        ("ok", _) => Ok(Event::ret(process, KvOutput::Ok)),
        ("fail", KvInput::Cas { .. }) => Ok(Event::ret(process, KvOutput::Fail)),
        ("fail", _) => Ok(Event::no_effect(process)),
        ("info", _) => Ok(Event::unknown(process)),
        (other, _) => Err(format!("bad type :{other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::Operation;

    fn s(text: &str) -> String {
        text.to_string()
    }

    #[test]
    fn parses_all_line_kinds() {
        let text = r#"{:process 0, :type :invoke, :f :append, :key "1", :value "x 0 0 y"}
{:process 1, :type :invoke, :f :get, :key "1", :value nil}
{:process 2, :type :invoke, :f :cas, :key 1, :value ["a" "b"]}

{:process 0, :type :ok, :f :append, :key "1", :value "x 0 0 y"}
{:process 1, :type :ok, :f :get, :key "1", :value ""}
{:process 2, :type :fail, :f :cas, :key "1", :value ["a" "b"]}
{:process 3, :type :invoke, :f :put, :key "2", :value "z"}
{:process 3, :type :fail, :f :put, :key "2", :value "z"}
{:process 4, :type :invoke, :f :put, :key "2", :value "w"}
{:process 4, :type :info, :f :put, :key "2", :value "w"}
"#;
        let history = parse_edn_kv(text).expect("well formed");
        assert_eq!(
            history.operations(),
            &[
                Operation::completed(
                    0,
                    KvInput::Append {
                        key: s("1"),
                        value: s("x 0 0 y")
                    },
                    0,
                    3,
                    KvOutput::Ok
                ),
                Operation::completed(
                    1,
                    KvInput::Get { key: s("1") },
                    1,
                    4,
                    KvOutput::Value(s(""))
                ),
                Operation::completed(
                    2,
                    KvInput::Cas {
                        key: s("1"),
                        expected: s("a"),
                        new: s("b")
                    },
                    2,
                    5,
                    KvOutput::Fail
                ),
                Operation::unknown(
                    4,
                    KvInput::Put {
                        key: s("2"),
                        value: s("w")
                    },
                    8
                ),
            ]
        );
    }

    #[test]
    fn reports_malformed_lines() {
        let cases = [
            (r#"{:process 0, :type :invoke, :f :get, :key "1""#, 1),
            (r#"{:process 0, :type :invoke, :f :get}"#, 1),
            (r#"{:process -1, :type :invoke, :f :get, :key "1"}"#, 1),
            (r#"{:process 0, :type :invoke, :f :frob, :key "1"}"#, 1),
            (
                r#"{:process 0, :type :invoke, :f :put, :key "1", :value 3}"#,
                1,
            ),
            (
                r#"{:process 0, :type :ok, :f :get, :key "1", :value ""}"#,
                1,
            ),
            (
                "{:process 0, :type :invoke, :f :get, :key \"1\"}\n\
                 {:process 0, :type :ok, :f :get, :key \"2\", :value \"\"}",
                2,
            ),
            (
                "{:process 0, :type :invoke, :f :get, :key \"1\"}\n\
                 {:process 0, :type :invoke, :f :get, :key \"1\"}",
                2,
            ),
        ];
        for (text, line) in cases {
            let error = parse_edn_kv(text).expect_err(text);
            assert_eq!(error.line, line, "{text:?}: {error}");
        }
    }
}
