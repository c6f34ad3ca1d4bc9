//! A YAML document as a tree whose every node remembers where it stood in
//! the file, built from saphyr's event stream, so that every configuration
//! problem can be reported with its line and column.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A place in the file: line and column, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    pub line: usize,
    pub column: usize,
}

impl Mark {
    fn of(span: &Span) -> Mark {
        Mark {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// One node of the document.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub mark: Mark,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing at all after a key.
    Null,
    /// A scalar's text; `quoted` scalars are never null, booleans or numbers.
    Scalar {
        text: String,
        quoted: bool,
    },
    Sequence(Vec<Node>),
    /// Keys in the order written, duplicates kept for the loader to report.
    Mapping(Vec<(Node, Node)>),
}

impl Node {
    /// What kind of node this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "nothing",
            Value::Scalar { .. } => "a scalar",
            Value::Sequence(_) => "a list",
            Value::Mapping(_) => "a mapping",
        }
    }

    /// The text of a scalar key or value, for messages and lookups.
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }
}

/// A syntax error, located.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub mark: Mark,
    pub message: String,
}

/// Parses the first document of `text`; `Ok(None)` for a file with no
/// document (empty or only comments).
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut builder = Builder {
        events: Parser::new_from_str(text),
        anchors: HashMap::new(),
    };
    loop {
        let (event, _) = builder.next()?;
        match event {
            Event::StreamEnd => return Ok(None),
            Event::DocumentStart(_) => break,
            _ => {}
        }
    }
    let (event, span) = builder.next()?;
    if matches!(event, Event::DocumentEnd) {
        return Ok(None);
    }
    let root = builder.node(event, span)?;
    loop {
        let (event, span) = builder.next()?;
        match event {
            Event::DocumentEnd => {}
            Event::StreamEnd => return Ok(Some(root)),
            _ => {
                return Err(SyntaxError {
                    mark: Mark::of(&span),
                    message: "a configuration file holds one YAML document, this is a second"
                        .into(),
                });
            }
        }
    }
}

struct Builder<'a> {
    events: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), SyntaxError> {
        match self.events.next() {
            Some(Ok(pair)) => Ok(pair),
            Some(Err(e)) => Err(SyntaxError {
                mark: Mark {
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                },
                message: e.info().to_owned(),
            }),
            None => Err(SyntaxError {
                mark: Mark::default(),
                message: "unexpected end of input".into(),
            }),
        }
    }

    fn node(&mut self, event: Event<'a>, span: Span) -> Result<Node, SyntaxError> {
        let mark = Mark::of(&span);
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, _tag) => (scalar(text, style, mark), anchor),
            Event::SequenceStart(anchor, _tag) => {
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(event, span)?);
                }
                (
                    Node {
                        value: Value::Sequence(items),
                        mark,
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, _tag) => {
                let mut entries = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::MappingEnd) {
                        break;
                    }
                    let key = self.node(event, span)?;
                    let (event, span) = self.next()?;
                    let value = self.node(event, span)?;
                    entries.push((key, value));
                }
                (
                    Node {
                        value: Value::Mapping(entries),
                        mark,
                    },
                    anchor,
                )
            }
            Event::Alias(id) => {
                return match self.anchors.get(&id) {
                    Some(node) => Ok(Node {
                        mark,
                        ..node.clone()
                    }),
                    None => Err(SyntaxError {
                        mark,
                        message: "alias of an unknown anchor".into(),
                    }),
                };
            }
            other => {
                return Err(SyntaxError {
                    mark,
                    message: format!("unexpected YAML event {other:?}"),
                });
            }
        };
        // Anchor 0 means the node has none.
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

fn scalar(text: Cow<'_, str>, style: ScalarStyle, mark: Mark) -> Node {
    let quoted = !matches!(style, ScalarStyle::Plain);
    let value = if !quoted && matches!(&*text, "" | "~" | "null" | "Null" | "NULL") {
        Value::Null
    } else {
        Value::Scalar {
            text: text.into_owned(),
            quoted,
        }
    };
    Node { value, mark }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(node: &Node) -> &str {
        node.as_scalar().unwrap()
    }

    #[test]
    fn nodes_carry_their_line_and_column() {
        let root = parse("a: 1\nb:\n  - x\n  - y: 2\n").unwrap().unwrap();
        let Value::Mapping(entries) = &root.value else {
            panic!("not a mapping")
        };
        assert_eq!(entries[0].0.mark, Mark { line: 1, column: 1 });
        assert_eq!(entries[0].1.mark, Mark { line: 1, column: 4 });
        let Value::Sequence(items) = &entries[1].1.value else {
            panic!("not a list")
        };
        assert_eq!(text(&items[0]), "x");
        assert_eq!(items[1].mark.line, 4);
    }

    #[test]
    fn empty_values_are_null_but_quoted_ones_are_not() {
        let root = parse("a:\nb: ''\nc: ~\n").unwrap().unwrap();
        let Value::Mapping(entries) = &root.value else {
            panic!("not a mapping")
        };
        assert_eq!(entries[0].1.value, Value::Null);
        assert_eq!(
            entries[1].1.value,
            Value::Scalar {
                text: String::new(),
                quoted: true
            }
        );
        assert_eq!(entries[2].1.value, Value::Null);
    }

    #[test]
    fn aliases_repeat_their_anchor() {
        let root = parse("a: &x {k: v}\nb: *x\n").unwrap().unwrap();
        let Value::Mapping(entries) = &root.value else {
            panic!("not a mapping")
        };
        assert_eq!(entries[0].1.value, entries[1].1.value);
    }

    #[test]
    fn syntax_errors_and_extra_documents_are_located() {
        let error = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(error.mark.line >= 1, "{error:?}");
        let error = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(error.mark.line, 2);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
    }
}
