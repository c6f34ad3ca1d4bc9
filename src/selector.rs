//! Prometheus series selectors (`model_accuracy{model="fraud",version=~"3|4"}`),
//! as `match[]` takes them in Prometheus's own API, for picking watched
//! series to reset.

use regex::Regex;

/// A parsed selector: every matcher must hold.
#[derive(Debug, Clone)]
pub struct Selector {
    matchers: Vec<Matcher>,
}

#[derive(Debug, Clone)]
struct Matcher {
    name: String,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    Equal(String),
    NotEqual(String),
    /// Anchored at both ends, as in Prometheus.
    Matches(Regex),
    NotMatches(Regex),
}

impl Matcher {
    fn holds(&self, value: &str) -> bool {
        match &self.op {
            Op::Equal(want) => value == want,
            Op::NotEqual(want) => value != want,
            Op::Matches(re) => re.is_match(value),
            Op::NotMatches(re) => !re.is_match(value),
        }
    }

    fn matches_empty(&self) -> bool {
        self.holds("")
    }
}

impl Selector {
    /// Parses one selector. As in Prometheus, it must contain a matcher that
    /// does not match the empty string, so `{}` cannot select everything by
    /// accident.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut parser = Parser { text, pos: 0 };
        let selector = parser.selector()?;
        if selector.matchers.iter().all(Matcher::matches_empty) {
            return Err(format!(
                "selector {text:?} must contain at least one matcher that does not match the empty string"
            ));
        }
        Ok(selector)
    }

    /// Whether a series with these labels (`__name__` among them, absent
    /// labels being empty) is selected.
    pub fn matches<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.matchers
            .iter()
            .all(|m| m.holds(label(&m.name).unwrap_or("")))
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn skip_blanks(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }

    fn error(&self, what: &str) -> String {
        format!(
            "bad selector {:?} at character {}: {what}",
            self.text,
            self.pos + 1
        )
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_blanks();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn selector(&mut self) -> Result<Selector, String> {
        let mut matchers = Vec::new();
        self.skip_blanks();
        let name = self.identifier(true);
        if !name.is_empty() {
            matchers.push(Matcher {
                name: "__name__".into(),
                op: Op::Equal(name.to_owned()),
            });
        }
        let braces = self.eat("{");
        if braces {
            loop {
                if self.eat("}") {
                    break;
                }
                matchers.push(self.matcher()?);
                if self.eat(",") {
                    continue;
                }
                if !self.eat("}") {
                    return Err(self.error("expected , or }"));
                }
                break;
            }
        }
        self.skip_blanks();
        if !self.rest().is_empty() {
            return Err(self.error("unexpected text after the selector"));
        }
        if matchers.is_empty() && !braces {
            return Err(self.error("expected a metric name or {"));
        }
        Ok(Selector { matchers })
    }

    /// A metric name (colons allowed) or a label name.
    fn identifier(&mut self, metric: bool) -> &str {
        let start = self.pos;
        let len = self
            .rest()
            .char_indices()
            .find(|&(i, c)| {
                let ok = c.is_ascii_alphabetic() || c == '_' || (metric && c == ':');
                !(ok || (i > 0 && c.is_ascii_digit()))
            })
            .map_or(self.rest().len(), |(i, _)| i);
        self.pos += len;
        &self.text[start..start + len]
    }

    fn matcher(&mut self) -> Result<Matcher, String> {
        self.skip_blanks();
        let name = self.identifier(false).to_owned();
        if name.is_empty() {
            return Err(self.error("expected a label name"));
        }
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| self.eat(op))
            .ok_or_else(|| self.error("expected =, !=, =~ or !~"))?;
        let value = self.string()?;
        let regex = |value: &str| {
            Regex::new(&format!("^(?:{value})$"))
                .map_err(|e| format!("bad regular expression {value:?}: {e}"))
        };
        let op = match op {
            "=" => Op::Equal(value),
            "!=" => Op::NotEqual(value),
            "=~" => Op::Matches(regex(&value)?),
            _ => Op::NotMatches(regex(&value)?),
        };
        Ok(Matcher { name, op })
    }

    /// A PromQL string: double or single quotes with escapes, or backticks
    /// taken literally.
    fn string(&mut self) -> Result<String, String> {
        self.skip_blanks();
        let mut chars = self.rest().char_indices();
        let Some((_, quote)) = chars.next().filter(|(_, c)| matches!(c, '"' | '\'' | '`')) else {
            return Err(self.error("expected a quoted string"));
        };
        let mut value = String::new();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                self.pos += i + c.len_utf8();
                return Ok(value);
            }
            if c == '\\' && quote != '`' {
                let escaped = match chars.next().map(|(_, e)| e) {
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some(other) => other,
                    None => break,
                };
                value.push(escaped);
            } else {
                value.push(c);
            }
        }
        Err(self.error("unterminated string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selects(selector: &str, labels: &[(&str, &str)]) -> bool {
        let selector = Selector::parse(selector).unwrap_or_else(|e| panic!("{e}"));
        selector.matches(|name| labels.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))
    }

    const SERIES: [(&str, &str); 3] = [
        ("__name__", "model_accuracy"),
        ("model", "fraud"),
        ("version", "3"),
    ];

    #[test]
    fn equality_and_regex_matchers_select_as_in_prometheus() {
        assert!(selects("model_accuracy", &SERIES));
        assert!(selects(r#"model_accuracy{model="fraud"}"#, &SERIES));
        assert!(selects(r#"{model=~"fr.*", version!="4"}"#, &SERIES));
        assert!(
            !selects(r#"{model=~"fr"}"#, &SERIES),
            "regexes are anchored"
        );
        assert!(!selects(r#"model_accuracy{model!~"fraud|ctr"}"#, &SERIES));
        assert!(
            selects(r#"{model='fraud', absent=""}"#, &SERIES),
            "absent is empty"
        );
        assert!(selects("{model=`fraud`,}", &SERIES));
    }

    #[test]
    fn selectors_that_would_match_everything_or_do_not_parse_are_refused() {
        for text in [
            "{}",
            r#"{a=""}"#,
            r#"{a=~".*"}"#,
            "",
            r#"{model="fraud""#,
            r#"{model=fraud}"#,
            r#"{model=~"("}"#,
            r#"m{a="1"} extra"#,
        ] {
            assert!(Selector::parse(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn escapes_in_double_quotes_are_read() {
        assert!(selects(r#"{model="a\"b"}"#, &[("model", "a\"b")]));
    }
}
