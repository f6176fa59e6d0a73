//! STIX 2.1 patterning (STIX 2.1 §9): a parser and the translation of
//! patterns into indicators.
//!
//! Written by hand: no maintained Rust crate parses STIX patterns (the
//! reference implementation is an ANTLR grammar for Python and Java), and
//! the grammar is small. The parser follows that grammar: observation
//! expressions `[ … ]` joined by `AND`, `OR` and `FOLLOWEDBY`, with
//! optional qualifiers (`WITHIN n SECONDS`, `REPEATS n TIMES`,
//! `START t'…' STOP t'…'`), holding comparison expressions
//! `object-type:property.path OP value` joined by `AND` and `OR`, with
//! parentheses, `NOT` and `EXISTS`. Keywords are read in any case.

use std::fmt;

/// Patterns longer than this are refused without parsing.
pub const MAX_PATTERN_LEN: usize = 64 * 1024;
/// Deeper nesting is refused, so a hostile pattern cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// Byte offset into the pattern.
    pub at: usize,
    pub message: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pattern error at byte {}: {}", self.at, self.message)
    }
}

impl std::error::Error for PatternError {}

/// An observation expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    Comparison(Comparison),
    And(Vec<Observation>),
    Or(Vec<Observation>),
    FollowedBy(Vec<Observation>),
}

/// A comparison expression inside `[ … ]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Comparison {
    Test(Test),
    And(Vec<Comparison>),
    Or(Vec<Comparison>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    pub object_type: String,
    /// The property path with quotes removed: `hashes.SHA-256`,
    /// `from_ref.value`, `body_multipart[*].body_raw_ref.name`.
    pub property: String,
    pub negated: bool,
    pub op: Op,
    /// `None` for `EXISTS`.
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    In,
    Like,
    Matches,
    IsSubset,
    IsSuperset,
    Exists,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Lt => "<",
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::In => "IN",
            Op::Like => "LIKE",
            Op::Matches => "MATCHES",
            Op::IsSubset => "ISSUBSET",
            Op::IsSuperset => "ISSUPERSET",
            Op::Exists => "EXISTS",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Timestamp(String),
    Hex(String),
    Binary(String),
    Set(Vec<Value>),
}

/// Parses a STIX pattern.
pub fn parse(pattern: &str) -> Result<Observation, PatternError> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(PatternError {
            at: 0,
            message: format!("longer than {MAX_PATTERN_LEN} bytes"),
        });
    }
    let mut p = Parser {
        s: pattern,
        pos: 0,
        depth: 0,
    };
    let obs = p.observation_expr()?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(p.err("unexpected text after the pattern"));
    }
    Ok(obs)
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, msg: impl Into<String>) -> PatternError {
        PatternError {
            at: self.pos,
            message: msg.into(),
        }
    }

    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.s.len() - trimmed.len();
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.rest().chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), PatternError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(format!("expected '{c}'")))
        }
    }

    /// Consumes `kw` if the next word is that keyword (any case).
    fn keyword(&mut self, kw: &str) -> bool {
        self.skip_ws();
        let r = self.rest();
        if r.len() >= kw.len()
            && r.is_char_boundary(kw.len())
            && r[..kw.len()].eq_ignore_ascii_case(kw)
            && !r[kw.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            self.pos += kw.len();
            true
        } else {
            false
        }
    }

    fn enter(&mut self) -> Result<(), PatternError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(format!("nested deeper than {MAX_DEPTH}")));
        }
        Ok(())
    }

    // observation_expr := or_obs ( FOLLOWEDBY or_obs )*
    fn observation_expr(&mut self) -> Result<Observation, PatternError> {
        self.enter()?;
        let mut items = vec![self.obs_or()?];
        while self.keyword("FOLLOWEDBY") {
            items.push(self.obs_or()?);
        }
        self.depth -= 1;
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Observation::FollowedBy(items)
        })
    }

    fn obs_or(&mut self) -> Result<Observation, PatternError> {
        let mut items = vec![self.obs_and()?];
        while self.keyword("OR") {
            items.push(self.obs_and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Observation::Or(items)
        })
    }

    fn obs_and(&mut self) -> Result<Observation, PatternError> {
        let mut items = vec![self.obs_unit()?];
        while self.keyword("AND") {
            items.push(self.obs_unit()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Observation::And(items)
        })
    }

    fn obs_unit(&mut self) -> Result<Observation, PatternError> {
        let obs = if self.eat('[') {
            let c = self.comparison_expr()?;
            self.expect(']')?;
            Observation::Comparison(c)
        } else if self.eat('(') {
            let o = self.observation_expr()?;
            self.expect(')')?;
            o
        } else {
            return Err(self.err("expected '[' or '(' to start an observation expression"));
        };
        self.qualifiers()?;
        Ok(obs)
    }

    /// Qualifiers narrow when the observations must occur; they do not
    /// change which values are indicators, so they are checked and dropped.
    fn qualifiers(&mut self) -> Result<(), PatternError> {
        loop {
            if self.keyword("WITHIN") {
                self.number()?;
                if !self.keyword("SECONDS") {
                    return Err(self.err("expected SECONDS after WITHIN n"));
                }
            } else if self.keyword("REPEATS") {
                self.number()?;
                if !self.keyword("TIMES") {
                    return Err(self.err("expected TIMES after REPEATS n"));
                }
            } else if self.keyword("START") {
                if !matches!(self.value()?, Value::Timestamp(_)) {
                    return Err(self.err("START needs a t'…' timestamp"));
                }
                if !self.keyword("STOP") {
                    return Err(self.err("expected STOP after START"));
                }
                if !matches!(self.value()?, Value::Timestamp(_)) {
                    return Err(self.err("STOP needs a t'…' timestamp"));
                }
            } else {
                return Ok(());
            }
        }
    }

    fn comparison_expr(&mut self) -> Result<Comparison, PatternError> {
        self.enter()?;
        let mut items = vec![self.comp_and()?];
        while self.keyword("OR") {
            items.push(self.comp_and()?);
        }
        self.depth -= 1;
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Comparison::Or(items)
        })
    }

    fn comp_and(&mut self) -> Result<Comparison, PatternError> {
        let mut items = vec![self.comp_unit()?];
        while self.keyword("AND") {
            items.push(self.comp_unit()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Comparison::And(items)
        })
    }

    fn comp_unit(&mut self) -> Result<Comparison, PatternError> {
        if self.eat('(') {
            let c = self.comparison_expr()?;
            self.expect(')')?;
            return Ok(c);
        }
        let mut negated = self.keyword("NOT");
        if self.keyword("EXISTS") {
            let (object_type, property) = self.object_path()?;
            return Ok(Comparison::Test(Test {
                object_type,
                property,
                negated,
                op: Op::Exists,
                value: None,
            }));
        }
        let (object_type, property) = self.object_path()?;
        if self.keyword("NOT") {
            negated = !negated;
        }
        let op = self.op()?;
        let value = if op == Op::In {
            self.set()?
        } else {
            self.value()?
        };
        Ok(Comparison::Test(Test {
            object_type,
            property,
            negated,
            op,
            value: Some(value),
        }))
    }

    fn op(&mut self) -> Result<Op, PatternError> {
        self.skip_ws();
        for (text, op) in [
            ("!=", Op::Ne),
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("=", Op::Eq),
            (">", Op::Gt),
            ("<", Op::Lt),
        ] {
            if self.rest().starts_with(text) {
                self.pos += text.len();
                return Ok(op);
            }
        }
        for (kw, op) in [
            ("IN", Op::In),
            ("LIKE", Op::Like),
            ("MATCHES", Op::Matches),
            ("ISSUBSET", Op::IsSubset),
            ("ISSUPERSET", Op::IsSuperset),
        ] {
            if self.keyword(kw) {
                return Ok(op);
            }
        }
        Err(self.err("expected a comparison operator"))
    }

    fn ident(&mut self) -> Option<String> {
        self.skip_ws();
        let r = self.rest();
        let n = r
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(r.len());
        if n == 0 {
            return None;
        }
        let start = self.pos;
        self.pos += n;
        Some(self.s[start..start + n].to_owned())
    }

    /// `type:step(.step | [n] | [*])*`, where a step is a name or a
    /// quoted name (`hashes.'SHA-256'`).
    fn object_path(&mut self) -> Result<(String, String), PatternError> {
        let Some(ty) = self.ident() else {
            return Err(self.err("expected an object type"));
        };
        let ty = ty.to_ascii_lowercase();
        if !self.rest().starts_with(':') {
            return Err(self.err("expected ':' after the object type"));
        }
        self.pos += 1;
        let mut prop = String::new();
        loop {
            if self.rest().starts_with('\'') {
                match self.value()? {
                    Value::Str(s) => prop.push_str(&s),
                    _ => return Err(self.err("expected a quoted property name")),
                }
            } else {
                let Some(step) = self.ident() else {
                    return Err(self.err("expected a property name"));
                };
                prop.push_str(&step);
            }
            // Indexes: `[0]` or `[*]`, directly after the step.
            while self.rest().starts_with('[') {
                let close = self
                    .rest()
                    .find(']')
                    .ok_or_else(|| self.err("unclosed '[' in the object path"))?;
                let inner = &self.rest()[1..close];
                if inner != "*" && inner.parse::<u64>().is_err() {
                    return Err(self.err("a list index must be a number or '*'"));
                }
                prop.push_str(&self.s[self.pos..self.pos + close + 1]);
                self.pos += close + 1;
            }
            if self.rest().starts_with('.') {
                self.pos += 1;
                prop.push('.');
            } else {
                break;
            }
        }
        Ok((ty, prop))
    }

    fn set(&mut self) -> Result<Value, PatternError> {
        self.expect('(')?;
        let mut items = vec![self.value()?];
        while self.eat(',') {
            items.push(self.value()?);
        }
        self.expect(')')?;
        Ok(Value::Set(items))
    }

    fn number(&mut self) -> Result<Value, PatternError> {
        self.skip_ws();
        let r = self.rest();
        let n = r
            .char_indices()
            .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && (c == '-' || c == '+'))))
            .map_or(r.len(), |(i, _)| i);
        let text = &r[..n];
        let v = if let Ok(i) = text.parse::<i64>() {
            Value::Int(i)
        } else if let Ok(f) = text.parse::<f64>() {
            Value::Float(f)
        } else {
            return Err(self.err("expected a number"));
        };
        self.pos += n;
        Ok(v)
    }

    fn quoted(&mut self) -> Result<String, PatternError> {
        // At the opening quote, which is where an unterminated string is
        // reported.
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\'' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, e @ ('\'' | '\\'))) => out.push(e),
                    _ => {
                        self.pos += i;
                        return Err(self.err("only \\' and \\\\ may be escaped in a string"));
                    }
                },
                c => out.push(c),
            }
        }
        Err(PatternError {
            at: open,
            message: "unterminated string".into(),
        })
    }

    fn value(&mut self) -> Result<Value, PatternError> {
        match self.peek() {
            Some('\'') => Ok(Value::Str(self.quoted()?)),
            Some(c @ ('t' | 'h' | 'b')) if self.rest()[1..].starts_with('\'') => {
                self.pos += 1;
                let s = self.quoted()?;
                Ok(match c {
                    't' => Value::Timestamp(s),
                    'h' => Value::Hex(s),
                    _ => Value::Binary(s),
                })
            }
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' => self.number(),
            _ if self.keyword("true") => Ok(Value::Bool(true)),
            _ if self.keyword("false") => Ok(Value::Bool(false)),
            _ => Err(self.err("expected a value")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ty: &str, prop: &str, op: Op, v: &str) -> Comparison {
        Comparison::Test(Test {
            object_type: ty.into(),
            property: prop.into(),
            negated: false,
            op,
            value: Some(Value::Str(v.into())),
        })
    }

    #[test]
    fn parses_the_shapes_in_use() {
        assert_eq!(
            parse("[file:hashes.'SHA-256' = 'ab']").unwrap(),
            Observation::Comparison(t("file", "hashes.SHA-256", Op::Eq, "ab"))
        );
        assert_eq!(
            parse("[ domain-name:value = 'a.com' OR ipv4-addr:value = '1.2.3.4' ]").unwrap(),
            Observation::Comparison(Comparison::Or(vec![
                t("domain-name", "value", Op::Eq, "a.com"),
                t("ipv4-addr", "value", Op::Eq, "1.2.3.4"),
            ]))
        );
        let p = parse(
            "([ipv4-addr:value = '1.2.3.4'] AND [url:value LIKE '%x%']) WITHIN 60 SECONDS \
             FOLLOWEDBY [email-message:body_multipart[*].body_raw_ref.name MATCHES '^a\\\\.exe$'] \
             REPEATS 2 TIMES START t'2016-01-01T00:00:00Z' STOP t'2016-02-01T00:00:00Z'",
        )
        .unwrap();
        let Observation::FollowedBy(items) = p else {
            panic!("{p:?}")
        };
        assert_eq!(
            items[1],
            Observation::Comparison(t(
                "email-message",
                "body_multipart[*].body_raw_ref.name",
                Op::Matches,
                "^a\\.exe$"
            ))
        );
        let p =
            parse("[ipv4-addr:value NOT IN ('1.1.1.1', '2.2.2.2') AND NOT EXISTS x-a:b]").unwrap();
        let Observation::Comparison(Comparison::And(v)) = p else {
            panic!()
        };
        assert!(
            matches!(&v[0], Comparison::Test(Test { negated: true, op: Op::In, value: Some(Value::Set(s)), .. }) if s.len() == 2)
        );
        assert!(matches!(
            &v[1],
            Comparison::Test(Test {
                negated: true,
                op: Op::Exists,
                ..
            })
        ));
        assert_eq!(
            parse("[file:name = 'it\\'s']").unwrap(),
            Observation::Comparison(t("file", "name", Op::Eq, "it's"))
        );
    }

    #[test]
    fn errors_say_where() {
        for (bad, at) in [
            ("[file:name = 'x'", 16),
            ("file:name = 'x'", 0),
            ("[file:name == 'x']", 12),
            ("[file:name = 'x'] junk", 18),
            ("[file name = 'x']", 5),
            ("[file:name = 'x]", 13),
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.at, at, "{bad}: {e}");
        }
        let deep = format!("{}[a:b = 1]{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).unwrap_err().message.contains("nested deeper"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "[\\[\\]() a-zA-Z0-9:.'=!<>,_*-]{0,60}") {
            let _ = parse(&s);
        }

        #[test]
        fn arbitrary_text_never_panics(s in proptest::prelude::any::<String>()) {
            let _ = parse(&s);
        }
    }
}
