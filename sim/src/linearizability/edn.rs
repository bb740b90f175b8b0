//! Just enough of EDN (Clojure's data notation) to read Jepsen histories.

/// An EDN value: the subset Jepsen histories use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EdnValue {
    /// `nil`.
    Nil,
    /// An integer.
    Int(i64),
    /// A keyword, without its colon: `:ok` is `Keyword("ok")`.
    Keyword(String),
    /// A string, unescaped.
    Str(String),
    /// A bare symbol other than `nil` (including `true` and `false`).
    Symbol(String),
    /// `[a b ...]` or `(a b ...)`.
    Vector(Vec<EdnValue>),
    /// `{k v ...}`, in written order.
    Map(Vec<(EdnValue, EdnValue)>),
}

/// How deeply collections may nest.
const MAX_DEPTH: usize = 32;

impl EdnValue {
    /// Parses the whitespace-separated (commas count as whitespace) values of `text`.
    pub(crate) fn parse_all(text: &str) -> Result<Vec<EdnValue>, String> {
        let mut reader = Reader { text, pos: 0 };
        let mut values = Vec::new();
        while reader.skip_whitespace() {
            values.push(reader.value(0)?);
        }
        Ok(values)
    }

    /// Parses `text`, which must hold exactly one value.
    pub(crate) fn parse(text: &str) -> Result<EdnValue, String> {
        let mut values = Self::parse_all(text)?;
        match values.len() {
            1 => Ok(values.remove(0)),
            n => Err(format!("expected one value, found {n}")),
        }
    }

    /// The value a map holds under keyword `:keyword`, if this is a map that has it.
    pub(crate) fn get(&self, keyword: &str) -> Option<&EdnValue> {
        match self {
            EdnValue::Map(entries) => entries.iter().find_map(|(k, v)| match k {
                EdnValue::Keyword(name) if name == keyword => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// The keyword's name, if this is a keyword.
    pub(crate) fn as_keyword(&self) -> Option<&str> {
        match self {
            EdnValue::Keyword(name) => Some(name),
            _ => None,
        }
    }
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// Skips whitespace and commas; returns whether anything is left.
    fn skip_whitespace(&mut self) -> bool {
        let rest = self.rest();
        let trimmed = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        self.pos += rest.len() - trimmed.len();
        !trimmed.is_empty()
    }

    fn value(&mut self, depth: usize) -> Result<EdnValue, String> {
        if depth > MAX_DEPTH {
            return Err(format!("collections nested more than {MAX_DEPTH} deep"));
        }
        match self.peek() {
            None => Err("unexpected end of input".to_string()),
            Some('[') => self.collection(']', depth).map(EdnValue::Vector),
            Some('(') => self.collection(')', depth).map(EdnValue::Vector),
            Some('{') => {
                let items = self.collection('}', depth)?;
                if items.len() % 2 != 0 {
                    return Err("a map with an odd number of forms".to_string());
                }
                let mut entries = Vec::with_capacity(items.len() / 2);
                let mut items = items.into_iter();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    entries.push((k, v));
                }
                Ok(EdnValue::Map(entries))
            }
            Some('"') => self.string(),
            Some(c) if "]})".contains(c) => Err(format!("unexpected {c:?}")),
            Some(_) => self.atom(),
        }
    }

    /// Reads the values of a collection whose opening bracket is next, up to `close`.
    fn collection(&mut self, close: char, depth: usize) -> Result<Vec<EdnValue>, String> {
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            if !self.skip_whitespace() {
                return Err(format!("missing {close:?}"));
            }
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(items);
            }
            items.push(self.value(depth + 1)?);
        }
    }

    fn string(&mut self) -> Result<EdnValue, String> {
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((offset, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += offset + 1;
                    return Ok(EdnValue::Str(out));
                }
                '\\' => match chars.next().map(|(_, e)| e) {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some(e @ ('"' | '\\')) => out.push(e),
                    Some(e) => return Err(format!("unsupported string escape \\{e}")),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err("unterminated string".to_string())
    }

    fn atom(&mut self) -> Result<EdnValue, String> {
        let rest = self.rest();
        let end = rest
            .find(|c: char| c.is_whitespace() || ",[](){}\"".contains(c))
            .unwrap_or(rest.len());
        let token = &rest[..end];
        self.pos += end;
        if let Some(name) = token.strip_prefix(':') {
            if name.is_empty() {
                return Err("an empty keyword".to_string());
            }
            return Ok(EdnValue::Keyword(name.to_string()));
        }
        let digits = token.strip_prefix(['-', '+']).unwrap_or(token);
        if digits.starts_with(|c: char| c.is_ascii_digit()) {
            return token
                .parse()
                .map(EdnValue::Int)
                .map_err(|e| format!("bad integer {token:?}: {e}"));
        }
        Ok(match token {
            "nil" => EdnValue::Nil,
            _ => EdnValue::Symbol(token.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(name: &str) -> EdnValue {
        EdnValue::Keyword(name.to_string())
    }

    #[test]
    fn parses_a_jepsen_map() {
        let value = EdnValue::parse(
            r#"{:process 3, :type :ok, :f :get, :key "k\"1", :value nil, :v [-1 2]}"#,
        )
        .expect("valid");
        assert_eq!(value.get("process"), Some(&EdnValue::Int(3)));
        assert_eq!(value.get("type"), Some(&kw("ok")));
        assert_eq!(value.get("key"), Some(&EdnValue::Str("k\"1".to_string())));
        assert_eq!(value.get("value"), Some(&EdnValue::Nil));
        assert_eq!(
            value.get("v"),
            Some(&EdnValue::Vector(vec![EdnValue::Int(-1), EdnValue::Int(2)]))
        );
        assert_eq!(value.get("missing"), None);
    }

    #[test]
    fn parses_sequences() {
        let values = EdnValue::parse_all("3\t:invoke  :cas [1 2]").expect("valid");
        assert_eq!(values.len(), 4);
        assert_eq!(values[1].as_keyword(), Some("invoke"));
    }

    #[test]
    fn rejects_malformed_input() {
        for bad in [
            "{:a 1", "{:a}", "\"open", "[1 2", "12x", ":", "]", "1 2", "",
        ] {
            assert!(EdnValue::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
