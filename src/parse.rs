//! The Prometheus text exposition format (version 0.0.4), parsed without
//! copying, line by line, over a body that arrives in chunks.
//!
//! [`ExpositionParser`] finds the complete lines of each chunk and hands every
//! sample line to a callback as a [`Sample`] borrowed from the chunk. Only a
//! line split between two chunks is copied, into a carry buffer that never
//! holds more than that one line.
//!
//! The grammar is the one Prometheus's own scrape parser accepts, checked
//! line by line: blanks (spaces, tabs) between tokens, a trailing comma in the
//! labels, and escapes other than `\\`, `\"` and `\n` kept verbatim. On top
//! of it we tolerate CRLF line ends, and reject duplicate label names and the
//! reserved label name `__name__`, as the Go client's parser does. Like
//! Prometheus's scrape parser, we check no rule that spans lines (a family's
//! samples being contiguous, a TYPE before its samples, a series repeated).
//! Quoted UTF-8 metric and label names (Prometheus 3) are not accepted.

use std::borrow::Cow;

use memchr::{memchr, memchr_iter, memchr2, memrchr};

/// One sample line, borrowed from the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// The metric name, e.g. `model_latency_seconds_bucket`.
    pub name: &'a str,
    /// The raw text between `{` and `}`, escapes untouched; `""` when the
    /// line has no braces. Read it with [`labels`].
    pub labels: &'a str,
    /// The name plus the braces exactly as written: a cache key. Two writings
    /// of one series (labels reordered, other blanks) give two keys.
    pub series: &'a str,
    /// The value; NaN, +Inf and -Inf included.
    pub value: f64,
    /// The optional timestamp, in milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
}

/// What one line of an exposition is.
#[derive(Debug, Clone, PartialEq)]
pub enum Line<'a> {
    Sample(Sample<'a>),
    /// `# HELP name text`, the text unescaped (`\\` and `\n`).
    Help {
        name: &'a str,
        text: Cow<'a, str>,
    },
    /// `# TYPE name kind`.
    Type {
        name: &'a str,
        kind: MetricType,
    },
    /// Any other line starting with `#`.
    Comment,
    /// An empty line, or one of blanks only.
    Blank,
}

/// The metric types a TYPE line may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

/// Why one line is malformed; every message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("expected {expected}, found {found}")]
    Unexpected { expected: String, found: String },
    #[error(
        "expected a metric name, `#` or a blank line, found HTML ({start:?}): \
         the target answered with a web page, not Prometheus metrics"
    )]
    Html { start: String },
    #[error("the line is not valid UTF-8 (bad byte at column {column})")]
    InvalidUtf8 { column: usize },
    #[error(
        "invalid value {value:?}: expected a float such as 1, -0.5, 1e-3, \
         NaN, +Inf or -Inf"
    )]
    InvalidValue { value: String },
    #[error("invalid timestamp {value:?}: expected an integer of milliseconds")]
    InvalidTimestamp { value: String },
    #[error(
        "unknown metric type {kind:?}: expected counter, gauge, histogram, \
         summary or untyped"
    )]
    UnknownType { kind: String },
    #[error("duplicate label name {name:?}")]
    DuplicateLabel { name: String },
    #[error("label name \"__name__\" is reserved for the metric name")]
    ReservedLabel,
    #[error("unterminated value of label {name:?}: expected a closing `\"`")]
    UnterminatedValue { name: String },
}

/// A malformed line of a body, with its 1-based number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    pub line: usize,
    pub kind: LineError,
}

/// A streaming parser of one exposition body.
///
/// After an error the body is malformed and the parser should be dropped.
#[derive(Debug, Default)]
pub struct ExpositionParser {
    /// The start of a line whose end has not arrived yet.
    carry: Vec<u8>,
    /// Complete lines seen so far.
    lines: usize,
}

/// A carry buffer grown by a very long line is given back above this size,
/// so one odd line does not pin memory for the parser's life.
const CARRY_KEEP: usize = 64 * 1024;

impl ExpositionParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses every complete line in `chunk`, handing each sample to `sink`
    /// (a closure will do), and keeps a trailing partial line for the next
    /// call.
    /// Stops at the first malformed line.
    pub fn feed(&mut self, chunk: &[u8], sink: &mut impl SampleSink) -> Result<(), ParseError> {
        let mut rest = chunk;

        // Complete the line carried over from the previous chunk, if any.
        if !self.carry.is_empty() {
            let Some(nl) = memchr(b'\n', rest) else {
                self.carry.extend_from_slice(rest);
                return Ok(());
            };
            self.carry.extend_from_slice(&rest[..nl]);
            rest = &rest[nl + 1..];
            self.parse_carry(sink)?;
        }

        // Parse the complete lines in place and carry the tail.
        let Some(last) = memrchr(b'\n', rest) else {
            self.carry.extend_from_slice(rest);
            return Ok(());
        };
        self.parse_complete(&rest[..=last], sink)?;
        self.carry.extend_from_slice(&rest[last + 1..]);
        Ok(())
    }

    /// The end of the body: parses a last line that had no newline.
    pub fn finish(&mut self, sink: &mut impl SampleSink) -> Result<(), ParseError> {
        if self.carry.is_empty() {
            return Ok(());
        }
        self.parse_carry(sink)
    }

    /// How many complete lines were parsed so far.
    pub fn lines(&self) -> usize {
        self.lines
    }

    fn parse_carry(&mut self, sink: &mut impl SampleSink) -> Result<(), ParseError> {
        let carry = std::mem::take(&mut self.carry);
        let result = self.parse_bytes_line(&carry, sink);
        self.carry = carry;
        self.carry.clear();
        if self.carry.capacity() > CARRY_KEEP {
            self.carry.shrink_to(CARRY_KEEP);
        }
        result
    }

    /// Parses `region`, a run of lines each ending with `\n`.
    fn parse_complete(
        &mut self,
        region: &[u8],
        sink: &mut impl SampleSink,
    ) -> Result<(), ParseError> {
        // One UTF-8 check for the whole region is much cheaper than one per
        // line; only a region that fails is checked again line by line, to
        // find which line to blame.
        match std::str::from_utf8(region) {
            Ok(text) => self.parse_text(text, sink),
            Err(_) => {
                let mut start = 0;
                for nl in memchr_iter(b'\n', region) {
                    self.parse_bytes_line(&region[start..nl], sink)?;
                    start = nl + 1;
                }
                Ok(())
            }
        }
    }

    fn parse_text(&mut self, text: &str, sink: &mut impl SampleSink) -> Result<(), ParseError> {
        let mut start = 0;
        for nl in memchr_iter(b'\n', text.as_bytes()) {
            self.parse_str_line(&text[start..nl], sink)?;
            start = nl + 1;
        }
        Ok(())
    }

    fn parse_bytes_line(
        &mut self,
        line: &[u8],
        sink: &mut impl SampleSink,
    ) -> Result<(), ParseError> {
        match std::str::from_utf8(line) {
            Ok(text) => self.parse_str_line(text, sink),
            Err(e) => {
                self.lines += 1;
                let kind = LineError::InvalidUtf8 {
                    column: e.valid_up_to() + 1,
                };
                Err(ParseError {
                    line: self.lines,
                    kind,
                })
            }
        }
    }

    fn parse_str_line(&mut self, line: &str, sink: &mut impl SampleSink) -> Result<(), ParseError> {
        self.lines += 1;
        match parse_line_expecting(line, sink.expected()) {
            Ok(Line::Sample(sample)) => {
                sink.sample(&sample);
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(kind) => Err(ParseError {
                line: self.lines,
                kind,
            }),
        }
    }
}

/// Where a parser's samples go.
pub trait SampleSink {
    fn sample(&mut self, sample: &Sample<'_>);

    /// The metric name and raw label text the next sample line will
    /// probably carry, when the sink knows (a target writes its series in
    /// the same order at every fetch). A line whose series is exactly that
    /// text, checked when it was first seen, is not checked again: reading
    /// the labels is a third of the parser's work.
    fn expected(&self) -> Option<(&str, &str)> {
        None
    }
}

impl<F: FnMut(&Sample<'_>)> SampleSink for F {
    fn sample(&mut self, sample: &Sample<'_>) {
        self(sample)
    }
}

/// Parses one line, without its `\n`; a trailing `\r` is ignored.
pub fn parse_line(line: &str) -> Result<Line<'_>, LineError> {
    parse_line_expecting(line, None)
}

/// [`parse_line`], told the name and label text a sample line will
/// probably carry (see [`SampleSink::expected`]).
fn parse_line_expecting<'a>(
    line: &'a str,
    expected: Option<(&str, &str)>,
) -> Result<Line<'a>, LineError> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut cur = Cursor::new(line);
    cur.skip_blanks();
    match cur.peek() {
        None => Ok(Line::Blank),
        Some(b'#') => parse_comment(cur),
        Some(_) => parse_sample(cur, expected).map(Line::Sample),
    }
}

/// Iterates the labels of a raw label text (a [`Sample::labels`]),
/// unescaping a value only when it contains an escape.
///
/// Duplicate names are not checked here: the parser checked them already.
pub fn labels(raw: &str) -> LabelIter<'_> {
    LabelIter {
        scanner: LabelScanner::new(Cursor::new(raw), false),
        done: false,
    }
}

/// The iterator [`labels`] returns; it ends after the first error.
#[derive(Debug, Clone)]
pub struct LabelIter<'a> {
    scanner: LabelScanner<'a>,
    done: bool,
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = Result<(&'a str, Cow<'a, str>), LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.scanner.next_label() {
            Ok(Some(label)) => Some(Ok((label.name, label.unescaped()))),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

fn parse_comment(mut cur: Cursor<'_>) -> Result<Line<'_>, LineError> {
    cur.bump();
    if cur.skip_blanks() == 0 {
        return Ok(Line::Comment);
    }
    let keyword = cur.take_until_blank();
    if (keyword != "HELP" && keyword != "TYPE") || cur.skip_blanks() == 0 {
        return Ok(Line::Comment);
    }

    // The metric name, then a blank before the text or type.
    let name = cur.take_name(METRIC_START, METRIC_CONT);
    if name.is_empty() {
        return Err(cur.unexpected(format!("a metric name after {keyword}")));
    }
    let blank = cur.skip_blanks() > 0;
    if !blank && !cur.at_end() {
        return Err(cur.unexpected(format!("a blank after metric name {name:?}")));
    }

    if keyword == "HELP" {
        let text = unescape(cur.rest(), false);
        return Ok(Line::Help { name, text });
    }
    let kind = match cur.rest().trim_end_matches([' ', '\t']) {
        "" => return Err(cur.unexpected(format!("a metric type after {name:?}"))),
        "counter" => MetricType::Counter,
        "gauge" => MetricType::Gauge,
        "histogram" => MetricType::Histogram,
        "summary" => MetricType::Summary,
        "untyped" => MetricType::Untyped,
        other => {
            return Err(LineError::UnknownType {
                kind: other.to_owned(),
            });
        }
    };
    Ok(Line::Type { name, kind })
}

fn parse_sample<'a>(
    mut cur: Cursor<'a>,
    expected: Option<(&str, &str)>,
) -> Result<Sample<'a>, LineError> {
    let start = cur.pos;
    let name = cur.take_name(METRIC_START, METRIC_CONT);
    if name.is_empty() {
        return Err(not_a_metric_name(&cur));
    }

    // The labels, if any: checked in full, since the closing brace can only
    // be found by reading past every quoted value, unless they are exactly
    // the expected text, which was checked when it was first seen.
    let known = expected
        .filter(|&(expected_name, _)| expected_name == name)
        .and_then(|(_, labels)| cur.known_labels(labels));
    let blank = known.is_none() && cur.skip_blanks() > 0;
    let (labels, series) = if let Some(close) = known {
        let open = start + name.len() + 1;
        (cur.slice(open, close), cur.slice(start, close + 1))
    } else if cur.eat(b'{') {
        let open = cur.pos;
        let close = check_labels(&mut cur)?;
        (cur.slice(open, close), cur.slice(start, close + 1))
    } else if blank || cur.at_end() {
        ("", name)
    } else {
        return Err(cur.unexpected(format!("`{{` or a blank after metric name {name:?}")));
    };

    // The value, then an optional timestamp.
    cur.skip_blanks();
    let token = cur.take_until_blank();
    if token.is_empty() {
        return Err(cur.unexpected(format!("a value for {series}")));
    }
    let value = parse_value(token)?;
    cur.skip_blanks();
    let timestamp_ms = if cur.at_end() {
        None
    } else {
        Some(parse_timestamp(cur.take_until_blank())?)
    };
    cur.skip_blanks();
    if !cur.at_end() {
        return Err(cur.unexpected("the end of the line after the timestamp".into()));
    }

    Ok(Sample {
        name,
        labels,
        series,
        value,
        timestamp_ms,
    })
}

fn not_a_metric_name(cur: &Cursor<'_>) -> LineError {
    if cur.peek() == Some(b'<') {
        let start: String = cur.rest().chars().take(40).collect();
        return LineError::Html { start };
    }
    cur.unexpected("a metric name, `#` or a blank line".into())
}

/// Reads the labels after `{` up to `}`, which it consumes; returns the
/// position of `}`.
fn check_labels(cur: &mut Cursor<'_>) -> Result<usize, LineError> {
    let mut scanner = LabelScanner::new(*cur, true);
    let mut seen = SeenNames::new();
    while let Some(label) = scanner.next_label()? {
        if label.name == "__name__" {
            return Err(LineError::ReservedLabel);
        }
        if !seen.insert(label.name) {
            return Err(LineError::DuplicateLabel {
                name: label.name.to_owned(),
            });
        }
    }
    *cur = scanner.cur;
    let close = cur.pos;
    cur.bump();
    Ok(close)
}

/// The label names of one line, kept without allocating for up to
/// `INLINE` labels; a line with more spills to the heap.
struct SeenNames<'a> {
    inline: [&'a str; INLINE],
    len: usize,
    spill: Vec<&'a str>,
    /// Whether the names so far came in increasing order, as most client
    /// libraries write them: then a name above the last one cannot be a
    /// repeat, and the names need not be searched.
    ascending: bool,
}

const INLINE: usize = 16;

impl<'a> SeenNames<'a> {
    fn new() -> Self {
        SeenNames {
            inline: [""; INLINE],
            len: 0,
            spill: Vec::new(),
            ascending: true,
        }
    }

    /// Adds a name; false when it was there already.
    fn insert(&mut self, name: &'a str) -> bool {
        let last = match self.len {
            0 => None,
            n if n <= INLINE => Some(self.inline[n - 1]),
            _ => self.spill.last().copied(),
        };
        let above_last = last.is_none_or(|last| name > last);
        if !(self.ascending && above_last) {
            let inline = &self.inline[..self.len.min(INLINE)];
            if inline.contains(&name) || self.spill.contains(&name) {
                return false;
            }
        }
        self.ascending &= above_last;
        if self.len < INLINE {
            self.inline[self.len] = name;
        } else {
            self.spill.push(name);
        }
        self.len += 1;
        true
    }
}

/// One `name="value"` pair, the value still escaped.
struct RawLabel<'a> {
    name: &'a str,
    value: &'a str,
    escaped: bool,
}

impl<'a> RawLabel<'a> {
    fn unescaped(&self) -> Cow<'a, str> {
        if self.escaped {
            unescape(self.value, true)
        } else {
            Cow::Borrowed(self.value)
        }
    }
}

/// Reads label pairs one by one, either up to a closing `}` (inside a
/// sample line) or up to the end of the text (a raw label text).
#[derive(Debug, Clone)]
struct LabelScanner<'a> {
    cur: Cursor<'a>,
    closing: bool,
    count: usize,
}

impl<'a> LabelScanner<'a> {
    fn new(cur: Cursor<'a>, closing: bool) -> Self {
        LabelScanner {
            cur,
            closing,
            count: 0,
        }
    }

    /// The next pair, or `None` at the end of the labels, where the cursor
    /// is left on the `}` (or at the end of a raw text).
    fn next_label(&mut self) -> Result<Option<RawLabel<'a>>, LineError> {
        if self.at_end_of_labels()? {
            return Ok(None);
        }
        if self.count > 0 {
            if !self.cur.eat(b',') {
                let close = if self.closing { " or `}`" } else { "" };
                return Err(self
                    .cur
                    .unexpected(format!("`,`{close} after a label value")));
            }
            if self.at_end_of_labels()? {
                return Ok(None);
            }
        }

        let name = self.cur.take_name(LABEL_START, LABEL_CONT);
        if name.is_empty() {
            return Err(self.cur.unexpected("a label name".into()));
        }
        self.cur.skip_blanks();
        if !self.cur.eat(b'=') {
            return Err(self
                .cur
                .unexpected(format!("`=` after label name {name:?}")));
        }
        self.cur.skip_blanks();
        if !self.cur.eat(b'"') {
            return Err(self
                .cur
                .unexpected(format!("`\"` to open the value of label {name:?}")));
        }
        let Some((value, escaped)) = self.cur.take_quoted() else {
            return Err(LineError::UnterminatedValue { name: name.into() });
        };
        self.count += 1;
        Ok(Some(RawLabel {
            name,
            value,
            escaped,
        }))
    }

    /// Skips blanks and tells whether the labels end here.
    fn at_end_of_labels(&mut self) -> Result<bool, LineError> {
        self.cur.skip_blanks();
        match (self.cur.peek(), self.closing) {
            (Some(b'}'), true) | (None, false) => Ok(true),
            (None, true) => Err(self.cur.unexpected("`}` to close the labels".into())),
            _ => Ok(false),
        }
    }
}

/// A position in a line. Every position it stops at is next to an ASCII
/// byte or at an end, so slicing there never splits a character.
#[derive(Debug, Clone, Copy)]
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor { text, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn bump(&mut self) {
        self.pos += 1;
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        self.pos += usize::from(hit);
        hit
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn slice(&self, start: usize, end: usize) -> &'a str {
        &self.text[start..end]
    }

    /// Skips spaces and tabs; returns how many.
    fn skip_blanks(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn take_until_blank(&mut self) -> &'a str {
        let start = self.pos;
        while !matches!(self.peek(), None | Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.slice(start, self.pos)
    }

    /// Takes a name whose first byte is of class `first` and the others of
    /// class `rest`; empty when the first byte does not fit.
    fn take_name(&mut self, first: u8, rest: u8) -> &'a str {
        let start = self.pos;
        let bytes = self.bytes();
        if bytes
            .get(start)
            .is_none_or(|&b| CLASS[b as usize] & first == 0)
        {
            return "";
        }
        let mut end = start + 1;
        while bytes
            .get(end)
            .is_some_and(|&b| CLASS[b as usize] & rest != 0)
        {
            end += 1;
        }
        self.pos = end;
        self.slice(start, end)
    }

    /// When the text here is `{labels}` for this non-empty `labels`, moves
    /// past it and returns the position of the `}`.
    fn known_labels(&mut self, labels: &str) -> Option<usize> {
        if labels.is_empty() {
            return None;
        }
        let rest = &self.bytes()[self.pos..];
        let close = labels.len() + 1;
        let matches = rest.first() == Some(&b'{')
            && rest.get(close) == Some(&b'}')
            && rest.get(1..close) == Some(labels.as_bytes());
        if !matches {
            return None;
        }
        let at = self.pos + close;
        self.pos = at + 1;
        Some(at)
    }

    /// After an opening `"`: takes the raw value and whether it holds an
    /// escape, leaving the cursor after the closing `"`.
    fn take_quoted(&mut self) -> Option<(&'a str, bool)> {
        let start = self.pos;
        let bytes = self.bytes();
        let mut at = start;
        let mut escaped = false;
        loop {
            at += memchr2(b'"', b'\\', &bytes[at..])?;
            if bytes[at] == b'"' {
                self.pos = at + 1;
                return Some((self.slice(start, at), escaped));
            }
            // Skipping one byte after the backslash is enough even before a
            // multi-byte character: its other bytes are never `"` or `\`.
            escaped = true;
            at += 2;
            if at > bytes.len() {
                return None;
            }
        }
    }

    fn unexpected(&self, expected: String) -> LineError {
        let found = match self.rest().chars().next() {
            None => "the end of the line".to_owned(),
            Some(c) => format!("{:?}", c),
        };
        LineError::Unexpected { expected, found }
    }
}

const METRIC_START: u8 = 1;
const METRIC_CONT: u8 = 2;
const LABEL_START: u8 = 4;
const LABEL_CONT: u8 = 8;

/// Byte classes of metric names (`[a-zA-Z_:][a-zA-Z0-9_:]*`) and label
/// names (`[a-zA-Z_][a-zA-Z0-9_]*`).
static CLASS: [u8; 256] = byte_classes();

const fn byte_classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = if b.is_ascii_alphabetic() || b == b'_' {
            METRIC_START | METRIC_CONT | LABEL_START | LABEL_CONT
        } else if b == b':' {
            METRIC_START | METRIC_CONT
        } else if b.is_ascii_digit() {
            METRIC_CONT | LABEL_CONT
        } else {
            0
        };
        i += 1;
    }
    table
}

/// Undoes `\\` and `\n` (and `\"` in label values); any other escape is
/// kept as written, as Prometheus does.
fn unescape(raw: &str, quotes: bool) -> Cow<'_, str> {
    if memchr(b'\\', raw.as_bytes()).is_none() {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// Parses a value as Go's `strconv.ParseFloat` does, less the hexadecimal
/// and underscore forms that Prometheus refuses.
fn parse_value(token: &str) -> Result<f64, LineError> {
    if let Some(v) = fast_decimal(token.as_bytes()) {
        return Ok(v);
    }
    let bytes = token.as_bytes();
    let unsigned = match bytes.first() {
        Some(b'+' | b'-') => &bytes[1..],
        _ => bytes,
    };
    let parsed = match unsigned.first() {
        Some(c) if c.is_ascii_digit() || *c == b'.' => {
            // Finite syntax that overflows is an error, as in Go.
            token.parse::<f64>().ok().filter(|v| v.is_finite())
        }
        _ => special_value(token),
    };
    parsed.ok_or_else(|| LineError::InvalidValue {
        value: token.to_owned(),
    })
}

/// Inf and NaN as Go spells them: any case, `inf` or `infinity` with an
/// optional sign, `nan` without one.
fn special_value(token: &str) -> Option<f64> {
    let (negative, unsigned) = match token.as_bytes().first() {
        Some(b'-') => (true, &token[1..]),
        Some(b'+') => (false, &token[1..]),
        _ => (false, token),
    };
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    let signed = unsigned.len() != token.len();
    (!signed && unsigned.eq_ignore_ascii_case("nan")).then_some(f64::NAN)
}

/// Exact powers of ten: dividing by one of them rounds correctly.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Most values are short integers or plain decimals. With at most 15
/// digits both the digits and the power of ten are exact in an f64, so one
/// division gives the correctly rounded result (Clinger's fast path);
/// anything else goes to the standard parser.
fn fast_decimal(bytes: &[u8]) -> Option<f64> {
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut point = None;
    for (i, &b) in digits.iter().enumerate() {
        match b {
            b'0'..=b'9' => mantissa = mantissa * 10 + u64::from(b - b'0'),
            b'.' if point.is_none() => point = Some(i),
            _ => return None,
        }
    }
    let scale = point.map_or(0, |i| digits.len() - i - 1);
    let digit_count = digits.len() - usize::from(point.is_some());
    if digit_count == 0 || digit_count > 15 {
        return None;
    }
    let value = mantissa as f64 / POW10[scale];
    Some(if negative { -value } else { value })
}

fn parse_timestamp(token: &str) -> Result<i64, LineError> {
    let digits = token.strip_prefix(['+', '-']).unwrap_or(token);
    let plain = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    plain
        .then(|| token.parse::<i64>().ok())
        .flatten()
        .ok_or_else(|| LineError::InvalidTimestamp {
            value: token.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(line: &str) -> Sample<'_> {
        match parse_line(line) {
            Ok(Line::Sample(s)) => s,
            other => panic!("expected a sample from {line:?}, got {other:?}"),
        }
    }

    fn error(line: &str) -> String {
        match parse_line(line) {
            Err(e) => e.to_string(),
            Ok(other) => panic!("expected an error from {line:?}, got {other:?}"),
        }
    }

    /// Parses `line` told to expect `expected`.
    fn expecting<'a>(line: &'a str, expected: (&str, &str)) -> Result<Sample<'a>, LineError> {
        match parse_line_expecting(line, Some(expected))? {
            Line::Sample(sample) => Ok(sample),
            other => panic!("expected a sample from {line:?}, got {other:?}"),
        }
    }

    #[test]
    fn an_expected_series_parses_as_any_other() {
        let line = r#"m{a="1",b="x\"y"} 2.5 1700000000000"#;
        let Ok(Line::Sample(plain)) = parse_line(line) else {
            panic!("parses");
        };
        assert_eq!(
            expecting(line, ("m", r#"a="1",b="x\"y""#)),
            Ok(plain.clone())
        );
        // Another name, other labels, a prefix of the labels: read in full.
        assert_eq!(
            expecting(line, ("n", r#"a="1",b="x\"y""#)),
            Ok(plain.clone())
        );
        assert_eq!(
            expecting(line, ("m", r#"a="2",b="x\"y""#)),
            Ok(plain.clone())
        );
        assert_eq!(expecting(line, ("m", r#"a="1""#)), Ok(plain));
        // What follows the labels is checked as ever.
        assert!(expecting(r#"m{a="1"} oops"#, ("m", r#"a="1""#)).is_err());
        assert!(expecting(r#"m{a="1"}"#, ("m", r#"a="1""#)).is_err());
        // A line that differs from the expected text is checked in full.
        assert_eq!(
            expecting(r#"m{a="1",a="1"} 1"#, ("m", r#"a="1""#)).map_err(|e| e.to_string()),
            Err(r#"duplicate label name "a""#.to_owned())
        );
    }

    #[test]
    fn a_sink_that_expects_its_series_gets_the_same_samples() {
        struct Expecting<'e> {
            next: std::slice::Iter<'e, (&'e str, &'e str)>,
            got: Vec<(String, String, f64)>,
        }
        impl SampleSink for Expecting<'_> {
            fn sample(&mut self, s: &Sample<'_>) {
                self.got
                    .push((s.name.to_owned(), s.labels.to_owned(), s.value));
                self.next.next();
            }
            fn expected(&self) -> Option<(&str, &str)> {
                self.next.as_slice().first().copied()
            }
        }
        let body = "# TYPE m gauge\nm{a=\"1\"} 1\nm{a=\"2\"} 2\nm{a=\"3\"} 3\n";
        // Right, then wrong, then right again after the wrong one.
        let hints = [("m", r#"a="1""#), ("m", r#"a="9""#), ("m", r#"a="3""#)];
        let mut sink = Expecting {
            next: hints.iter(),
            got: Vec::new(),
        };
        let mut parser = ExpositionParser::new();
        parser.feed(body.as_bytes(), &mut sink).unwrap();
        parser.finish(&mut sink).unwrap();
        let want: Vec<_> = (1..=3)
            .map(|i| ("m".to_owned(), format!("a=\"{i}\""), f64::from(i)))
            .collect();
        assert_eq!(sink.got, want);
    }

    fn label_pairs(raw: &str) -> Vec<(String, String)> {
        labels(raw)
            .map(|l| l.map(|(n, v)| (n.to_owned(), v.into_owned())))
            .collect::<Result<_, _>>()
            .expect("labels parse")
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// A sample owned, with the value's bits so NaN compares equal.
    type Owned = (String, String, String, u64, Option<i64>);

    fn parse_chunks<'a>(
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> (Vec<Owned>, Result<(), ParseError>) {
        let mut parser = ExpositionParser::new();
        let mut out = Vec::new();
        let mut keep = |s: &Sample<'_>| {
            out.push((
                s.name.to_owned(),
                s.labels.to_owned(),
                s.series.to_owned(),
                s.value.to_bits(),
                s.timestamp_ms,
            ))
        };
        let mut result = Ok(());
        for chunk in chunks {
            result = parser.feed(chunk, &mut keep);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = parser.finish(&mut keep);
        }
        (out, result)
    }

    #[test]
    fn sample_borrows_name_labels_and_series() {
        let s = sample(r#"model_latency_seconds_bucket{model="fraud",le="0.5"} 42 1700000000000"#);
        assert_eq!(s.name, "model_latency_seconds_bucket");
        assert_eq!(s.labels, r#"model="fraud",le="0.5""#);
        assert_eq!(
            s.series,
            r#"model_latency_seconds_bucket{model="fraud",le="0.5"}"#
        );
        assert_eq!(s.value, 42.0);
        assert_eq!(s.timestamp_ms, Some(1_700_000_000_000));
    }

    #[test]
    fn sample_without_braces_has_empty_labels_and_its_name_as_series() {
        let s = sample("up 1");
        assert_eq!((s.name, s.labels, s.series), ("up", "", "up"));
        let s = sample("up{} 1");
        assert_eq!((s.name, s.labels, s.series), ("up", "", "up{}"));
    }

    #[test]
    fn label_values_keep_commas_equals_braces_and_spaces() {
        let s = sample(r#"http_requests_total{path="/a,b=c}{ d",code="200"} 3"#);
        assert_eq!(
            label_pairs(s.labels),
            pairs(&[("path", "/a,b=c}{ d"), ("code", "200")])
        );
    }

    #[test]
    fn escaped_label_values_are_unescaped_and_plain_ones_borrowed() {
        let s = sample(r#"m{a="x\\y \"q\" \n",b="plain"} 1"#);
        let got: Vec<_> = labels(s.labels).collect::<Result<_, _>>().unwrap();
        assert_eq!(got[0], ("a", Cow::Owned("x\\y \"q\" \n".to_owned())));
        assert!(matches!(got[1].1, Cow::Borrowed("plain")));
    }

    #[test]
    fn unknown_escapes_are_kept_as_written() {
        let s = sample(r#"m{a="tab\there"} 1"#);
        assert_eq!(label_pairs(s.labels), pairs(&[("a", "tab\\there")]));
    }

    #[test]
    fn trailing_comma_and_blanks_inside_braces_are_allowed() {
        let s = sample("m { a = \"1\" ,\tb=\"2\", } 1");
        assert_eq!(label_pairs(s.labels), pairs(&[("a", "1"), ("b", "2")]));
        assert_eq!(s.series, "m { a = \"1\" ,\tb=\"2\", }");
    }

    #[test]
    fn duplicate_label_name_is_an_error() {
        assert_eq!(
            error(r#"m{a="1",b="2",a="3"} 1"#),
            r#"duplicate label name "a""#
        );
    }

    #[test]
    fn duplicate_label_name_is_found_in_sorted_and_unsorted_lines() {
        assert_eq!(error(r#"m{a="1",a="2"} 1"#), r#"duplicate label name "a""#);
        assert_eq!(
            error(r#"m{b="1",c="2",a="3",c="4"} 1"#),
            r#"duplicate label name "c""#
        );
        assert!(parse_line(r#"m{b="1",a="2",c="3"} 1"#).is_ok());
    }

    #[test]
    fn duplicate_label_name_is_found_past_the_inline_names() {
        let mut line = String::from("m{");
        for i in 0..20 {
            line.push_str(&format!("l{i}=\"v\","));
        }
        line.push_str("l19=\"again\"} 1");
        assert_eq!(error(&line), r#"duplicate label name "l19""#);
    }

    #[test]
    fn reserved_label_name_is_an_error() {
        assert!(error(r#"m{__name__="x"} 1"#).contains("reserved"));
    }

    #[test]
    fn names_are_validated() {
        assert_eq!(
            error("9lives 1"),
            "expected a metric name, `#` or a blank line, found '9'"
        );
        assert_eq!(
            error("my-metric 1"),
            "expected `{` or a blank after metric name \"my\", found '-'"
        );
        assert_eq!(error(r#"m{1a="x"} 1"#), "expected a label name, found '1'");
        assert_eq!(
            error(r#"m{a:b="x"} 1"#),
            "expected `=` after label name \"a\", found ':'"
        );
        let s = sample("ns:recording_rule:rate5m 2");
        assert_eq!(s.name, "ns:recording_rule:rate5m");
    }

    #[test]
    fn malformed_labels_say_what_was_expected() {
        assert_eq!(
            error(r#"m{a="1" b="2"} 1"#),
            "expected `,` or `}` after a label value, found 'b'"
        );
        assert_eq!(
            error(r#"m{a=1} 1"#),
            "expected `\"` to open the value of label \"a\", found '1'"
        );
        assert_eq!(
            error(r#"m{a="1"} "#),
            "expected a value for m{a=\"1\"}, found the end of the line"
        );
        assert_eq!(
            error(r#"m{a="1""#),
            "expected `}` to close the labels, found the end of the line"
        );
        assert_eq!(
            error(r#"m{a="1} 1"#),
            "unterminated value of label \"a\": expected a closing `\"`"
        );
        assert_eq!(
            error(r#"m{a="1\"} 1"#),
            "unterminated value of label \"a\": expected a closing `\"`"
        );
        assert_eq!(error(r#"m{,} 1"#), "expected a label name, found ','");
    }

    #[test]
    fn special_and_go_syntax_values_parse() {
        let cases = [
            ("NaN", f64::NAN),
            ("nan", f64::NAN),
            ("+Inf", f64::INFINITY),
            ("-Inf", f64::NEG_INFINITY),
            ("Inf", f64::INFINITY),
            ("-infinity", f64::NEG_INFINITY),
            ("1e-3", 1e-3),
            ("-0", -0.0),
            ("1.5E+10", 1.5e10),
            (".5", 0.5),
            ("5.", 5.0),
            ("+7", 7.0),
            ("0.1", 0.1),
            ("123456789012345678", 123456789012345678.0),
            ("1.2345678901234567e-05", 1.2345678901234567e-05),
        ];
        for (text, want) in cases {
            let got = sample(&format!("m {text}")).value;
            assert_eq!(got.to_bits(), want.to_bits(), "value {text}");
        }
    }

    #[test]
    fn values_outside_go_syntax_are_errors() {
        for text in [
            "abc", "-nan", "0x1p3", "1_000", "1e400", "1,5", ".", "Infin", "1e",
        ] {
            assert_eq!(
                error(&format!("m {text}")),
                format!(
                    "invalid value {text:?}: expected a float such as 1, -0.5, 1e-3, NaN, +Inf or -Inf"
                ),
            );
        }
    }

    #[test]
    fn timestamps_are_integer_milliseconds() {
        assert_eq!(sample("m 1 -5").timestamp_ms, Some(-5));
        assert_eq!(sample("m 1 17 \t").timestamp_ms, Some(17));
        assert_eq!(
            error("m 1 1.5"),
            "invalid timestamp \"1.5\": expected an integer of milliseconds"
        );
        assert!(error("m 1 99999999999999999999").starts_with("invalid timestamp"));
        assert_eq!(
            error("m 1 2 3"),
            "expected the end of the line after the timestamp, found '3'"
        );
    }

    #[test]
    fn help_text_is_unescaped() {
        let line = parse_line(r"# HELP m Latency in seconds\nper request, a\\b \q").unwrap();
        let want = Line::Help {
            name: "m",
            text: Cow::Owned("Latency in seconds\nper request, a\\b \\q".into()),
        };
        assert_eq!(line, want);
        assert_eq!(
            parse_line("# HELP m").unwrap(),
            Line::Help {
                name: "m",
                text: Cow::Borrowed("")
            }
        );
    }

    #[test]
    fn type_lines_accept_the_five_types_only() {
        for (text, kind) in [
            ("counter", MetricType::Counter),
            ("gauge", MetricType::Gauge),
            ("histogram", MetricType::Histogram),
            ("summary", MetricType::Summary),
            ("untyped", MetricType::Untyped),
        ] {
            let line = format!("# TYPE m {text}");
            assert_eq!(parse_line(&line).unwrap(), Line::Type { name: "m", kind });
        }
        assert_eq!(
            error("# TYPE m gaugehistogram"),
            "unknown metric type \"gaugehistogram\": expected counter, gauge, histogram, summary or untyped"
        );
        assert!(error("# TYPE m Counter").starts_with("unknown metric type"));
        assert_eq!(
            error("# TYPE m"),
            "expected a metric type after \"m\", found the end of the line"
        );
        assert_eq!(
            error("# TYPE 9 counter"),
            "expected a metric name after TYPE, found '9'"
        );
    }

    #[test]
    fn comments_and_blank_lines_are_recognised() {
        for line in [
            "# hello",
            "#",
            "#HELP m x",
            "# HELP",
            "  # TYPE-ish",
            "# help m x",
        ] {
            assert_eq!(parse_line(line).unwrap(), Line::Comment, "{line:?}");
        }
        for line in ["", "   ", "\t", "\r"] {
            assert_eq!(parse_line(line).unwrap(), Line::Blank, "{line:?}");
        }
    }

    #[test]
    fn crlf_line_ends_are_tolerated() {
        let body = b"# HELP m x\r\n# TYPE m gauge\r\nm{a=\"1\"} 2\r\n\r\nm 3\r\n";
        let (samples, result) = parse_chunks([&body[..]]);
        result.unwrap();
        let values: Vec<_> = samples.iter().map(|s| f64::from_bits(s.3)).collect();
        assert_eq!(values, [2.0, 3.0]);
    }

    #[test]
    fn histogram_and_summary_samples_are_plain_samples() {
        let body = "# TYPE lat histogram\n\
                    lat_bucket{le=\"0.1\"} 1\nlat_bucket{le=\"+Inf\"} 3\n\
                    lat_sum 0.7\nlat_count 3\n\
                    # TYPE q summary\nq{quantile=\"0.99\"} 0.2\nq_sum 1\nq_count 4\n";
        let (samples, result) = parse_chunks([body.as_bytes()]);
        result.unwrap();
        let series: Vec<_> = samples.iter().map(|s| s.2.as_str()).collect();
        assert_eq!(
            series,
            [
                "lat_bucket{le=\"0.1\"}",
                "lat_bucket{le=\"+Inf\"}",
                "lat_sum",
                "lat_count",
                "q{quantile=\"0.99\"}",
                "q_sum",
                "q_count"
            ]
        );
    }

    #[test]
    fn html_page_fails_on_line_one_with_a_clear_error() {
        let body = b"<!DOCTYPE html>\n<html><body>Login</body></html>\n";
        let (samples, result) = parse_chunks([&body[..]]);
        assert!(samples.is_empty());
        let err = result.unwrap_err();
        assert_eq!(err.line, 1);
        assert_eq!(
            err.to_string(),
            "line 1: expected a metric name, `#` or a blank line, found HTML \
             (\"<!DOCTYPE html>\"): the target answered with a web page, not \
             Prometheus metrics"
        );
    }

    #[test]
    fn invalid_utf8_is_an_error_on_its_line() {
        let body = b"a 1\nb{x=\"\xff\"} 2\nc 3\n";
        for size in [1, 2, 5, body.len()] {
            let (samples, result) = parse_chunks(body.chunks(size));
            assert_eq!(samples.len(), 1, "chunks of {size}");
            let err = result.unwrap_err();
            assert_eq!(
                err.to_string(),
                "line 2: the line is not valid UTF-8 (bad byte at column 6)"
            );
        }
    }

    #[test]
    fn errors_stop_the_parse_and_name_the_line() {
        let body = b"# HELP a x\na 1\nb 2\nc{ 3\nd 4\n";
        let (samples, result) = parse_chunks([&body[..]]);
        assert_eq!(samples.len(), 2);
        assert_eq!(result.unwrap_err().line, 4);
    }

    #[test]
    fn last_line_without_newline_is_parsed_by_finish() {
        let mut parser = ExpositionParser::new();
        let mut seen = Vec::new();
        parser
            .feed(b"a 1\nb 2", &mut |s: &Sample<'_>| {
                seen.push(s.name.to_owned())
            })
            .unwrap();
        assert_eq!(seen, ["a"]);
        parser
            .finish(&mut |s: &Sample<'_>| seen.push(s.name.to_owned()))
            .unwrap();
        assert_eq!(seen, ["a", "b"]);
        assert_eq!(parser.lines(), 2);
    }

    #[test]
    fn lines_split_inside_a_character_or_crlf_parse_identically() {
        let body = "m{who=\"日本🦀\"} 1\r\nn 2\r\n".as_bytes();
        let whole = parse_chunks([body]);
        whole.1.clone().unwrap();
        for cut in 0..=body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(parse_chunks([a, b]), whole, "cut at {cut}");
        }
    }

    #[test]
    fn carry_holds_at_most_one_line() {
        let body: String = (0..200)
            .map(|i| format!("metric_{i}{{k=\"{}\"}} {i}\n", "v".repeat(i)))
            .collect();
        let longest = body.lines().map(str::len).max().unwrap();
        let mut parser = ExpositionParser::new();
        for chunk in body.as_bytes().chunks(7) {
            parser.feed(chunk, &mut |_: &Sample<'_>| {}).unwrap();
            assert!(parser.carry.len() <= longest);
        }
        assert_eq!(parser.lines(), 200);
    }

    #[test]
    fn prometheus_parse_splits_label_values_at_commas_and_equals() {
        let line = r#"http_requests_total{path="/search?q=a,b",code="200"} 7"#;

        // prometheus-parse splits the label text at every `,` and then at
        // every `=`, and silently drops a pair that does not split in two.
        let theirs = prometheus_parse::Scrape::parse(std::iter::once(Ok(line.to_owned()))).unwrap();
        let labels = &theirs.samples[0].labels;
        assert_eq!(labels.get("path"), None);
        assert_eq!(labels.get("code"), Some("200"));
        assert_eq!(labels.len(), 1);

        let ours = sample(line);
        assert_eq!(
            label_pairs(ours.labels),
            pairs(&[("path", "/search?q=a,b"), ("code", "200")])
        );
    }

    fn escape(value: &str) -> String {
        value
            .replace('\\', r"\\")
            .replace('"', "\\\"")
            .replace('\n', r"\n")
    }

    fn label_value() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just("a"),
                Just("0.5"),
                Just(","),
                Just("="),
                Just("}"),
                Just("{"),
                Just(" "),
                Just(r"\\"),
                Just(r#"\""#),
                Just(r"\n"),
                Just("é"),
                Just("日本"),
                Just("🦀"),
            ],
            0..6,
        )
        .prop_map(|parts| parts.concat())
    }

    fn line() -> impl Strategy<Value = Vec<u8>> {
        let sample = (
            prop::sample::select(vec!["up", "model_accuracy", "lat_bucket", "a:b"]),
            prop::collection::vec(label_value(), 0..4),
            prop::sample::select(vec!["1", "-0.25", "NaN", "+Inf", "1e-3", "12345"]),
            prop::option::of(0i64..2_000_000_000_000),
        )
            .prop_map(|(name, values, value, ts)| {
                let labels: Vec<_> = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("l{i}=\"{v}\""))
                    .collect();
                let braces = if labels.is_empty() {
                    String::new()
                } else {
                    format!("{{{}}}", labels.join(","))
                };
                let ts = ts.map(|t| format!(" {t}")).unwrap_or_default();
                format!("{name}{braces} {value}{ts}").into_bytes()
            });
        prop_oneof![
            6 => sample,
            1 => Just(b"# HELP up Whether \\\\ the target is up\\n".to_vec()),
            1 => Just(b"# TYPE up gauge".to_vec()),
            1 => Just(b"# a comment".to_vec()),
            1 => Just(Vec::new()),
            1 => Just(b"broken{ 1".to_vec()),
            1 => Just(b"bad_utf8{x=\"\xe6\x97\"} 1".to_vec()),
        ]
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        let ended = (line(), prop::bool::ANY).prop_map(|(mut l, crlf)| {
            l.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            l
        });
        (prop::collection::vec(ended, 0..30), prop::bool::ANY).prop_map(|(lines, cut_last)| {
            let mut body = lines.concat();
            // Sometimes the body ends without a newline.
            if cut_last && body.last() == Some(&b'\n') {
                body.pop();
            }
            body
        })
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_samples_of_one_chunk(
            body in body(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let whole = parse_chunks([&body[..]]);
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for cut in cuts {
                chunks.push(&body[start..cut]);
                start = cut;
            }
            chunks.push(&body[start..]);
            prop_assert_eq!(parse_chunks(chunks), whole);
        }

        #[test]
        fn labels_round_trip_any_escaped_value(
            values in prop::collection::vec(any::<String>(), 1..5),
            blanks in prop::bool::ANY,
        ) {
            let sep = if blanks { " , " } else { "," };
            let raw: Vec<_> = values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("n{i}=\"{}\"", escape(v)))
                .collect();
            let line = format!("m{{{}}} 1", raw.join(sep));
            let s = sample(&line);
            let want: Vec<_> = values
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("n{i}"), v.clone()))
                .collect();
            prop_assert_eq!(label_pairs(s.labels), want);
        }

        #[test]
        fn fast_decimal_path_matches_the_standard_parser(
            int in 0u64..1_000_000_000_000_000,
            frac_digits in 0usize..16,
            negative in prop::bool::ANY,
        ) {
            let digits = int.to_string();
            let text = if frac_digits == 0 || frac_digits >= digits.len() {
                digits
            } else {
                let (a, b) = digits.split_at(digits.len() - frac_digits);
                format!("{a}.{b}")
            };
            let text = if negative { format!("-{text}") } else { text };
            let std: f64 = text.parse().unwrap();
            prop_assert_eq!(parse_value(&text).unwrap().to_bits(), std.to_bits());
        }
    }
}
