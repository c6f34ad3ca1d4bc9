//! Reading recorded samples from CSV, one row at a time, so a file of any
//! length replays in the memory of one row.

use std::io::BufRead;

use thiserror::Error;

/// A problem with the input, located by its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InputError {
    #[error("line {line}: {message}")]
    Row { line: u64, message: String },
    #[error("the header {header:?} has no `{column}` column")]
    Header {
        header: String,
        column: &'static str,
    },
    #[error("the input is empty: a header `timestamp,value` is needed")]
    Empty,
    #[error("reading the input: {0}")]
    Io(String),
}

impl InputError {
    /// Whether the rest of the input can still be read after this error.
    pub fn is_row(&self) -> bool {
        matches!(self, InputError::Row { .. })
    }
}

/// One sample as read, borrowing the reader's buffers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row<'a> {
    /// The series key: empty for a single-series file, else the `series`
    /// column and the label columns, as `name{label="value",...}`.
    pub series: &'a str,
    /// The timestamp as written, echoed in the output.
    pub timestamp: &'a str,
    /// Unix ms.
    pub at_ms: i64,
    /// The value as written.
    pub value_text: &'a str,
    pub value: f64,
    pub line: u64,
}

/// Where the columns are.
#[derive(Debug)]
struct Layout {
    columns: usize,
    timestamp: usize,
    value: usize,
    series: Option<usize>,
    /// (column, name), sorted by name.
    labels: Vec<(usize, String)>,
}

impl Layout {
    fn keyed(&self) -> bool {
        self.series.is_some() || !self.labels.is_empty()
    }
}

/// A CSV of samples with a header row.
pub struct CsvSamples<R> {
    reader: R,
    layout: Layout,
    line: u64,
    text: String,
    /// The cells of the current row, unquoted, and where each one ends.
    cells: String,
    ends: Vec<usize>,
    key: String,
}

impl<R: BufRead> CsvSamples<R> {
    /// Reads the header and returns a reader positioned on the first row.
    pub fn new(mut reader: R) -> Result<Self, InputError> {
        let mut text = String::new();
        let mut line = 0;
        loop {
            text.clear();
            let n = reader
                .read_line(&mut text)
                .map_err(|e| InputError::Io(e.to_string()))?;
            if n == 0 {
                return Err(InputError::Empty);
            }
            line += 1;
            if !text.trim().is_empty() {
                break;
            }
        }
        let mut cells = String::new();
        let mut ends = Vec::new();
        split(trim_newline(&text), &mut cells, &mut ends)
            .map_err(|message| InputError::Row { line, message })?;
        let layout = layout(&text, &cells, &ends)?;
        Ok(CsvSamples {
            reader,
            layout,
            line,
            text,
            cells,
            ends,
            key: String::new(),
        })
    }

    /// Whether rows name their series (a `series` or label columns).
    pub fn keyed(&self) -> bool {
        self.layout.keyed()
    }

    /// The next row; `None` at the end. A row error leaves the reader on
    /// the next line, so the caller may go on.
    pub fn next_row(&mut self) -> Option<Result<Row<'_>, InputError>> {
        loop {
            self.text.clear();
            match self.reader.read_line(&mut self.text) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(InputError::Io(e.to_string()))),
            }
            self.line += 1;
            if !self.text.trim().is_empty() {
                break;
            }
        }
        Some(self.parse_current())
    }

    fn parse_current(&mut self) -> Result<Row<'_>, InputError> {
        let line = self.line;
        let fail = |message: String| InputError::Row { line, message };
        split(trim_newline(&self.text), &mut self.cells, &mut self.ends).map_err(fail)?;
        if self.ends.len() != self.layout.columns {
            return Err(fail(format!(
                "{} fields where the header has {}",
                self.ends.len(),
                self.layout.columns
            )));
        }
        let cell = |i: usize| cell(&self.cells, &self.ends, i);
        let timestamp = cell(self.layout.timestamp).trim();
        let at_ms = super::parse_timestamp(timestamp).ok_or_else(|| {
            fail(format!(
                "timestamp {timestamp:?} is neither Unix seconds nor an RFC 3339 time"
            ))
        })?;
        let value_text = cell(self.layout.value).trim();
        let value = parse_value(value_text)
            .ok_or_else(|| fail(format!("value {value_text:?} is not a number")))?;
        self.key.clear();
        if self.layout.keyed() {
            build_key(&mut self.key, &self.layout, &self.cells, &self.ends);
        }
        Ok(Row {
            series: &self.key,
            timestamp: cell(self.layout.timestamp).trim(),
            at_ms,
            value_text: cell(self.layout.value).trim(),
            value,
            line,
        })
    }
}

fn layout(header: &str, cells: &str, ends: &[usize]) -> Result<Layout, InputError> {
    let names: Vec<&str> = (0..ends.len())
        .map(|i| cell(cells, ends, i).trim())
        .collect();
    let find = |column: &'static str| {
        names
            .iter()
            .position(|name| *name == column)
            .ok_or_else(|| InputError::Header {
                header: trim_newline(header).to_owned(),
                column,
            })
    };
    let timestamp = find("timestamp")?;
    let value = find("value")?;
    let series = names.iter().position(|name| *name == "series");
    let mut labels: Vec<(usize, String)> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != timestamp && *i != value && Some(*i) != series)
        .map(|(i, name)| (i, (*name).to_owned()))
        .collect();
    labels.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(Layout {
        columns: names.len(),
        timestamp,
        value,
        series,
        labels,
    })
}

/// `name{a="x",b="y"}` with label values escaped as Prometheus escapes them.
fn build_key(key: &mut String, layout: &Layout, cells: &str, ends: &[usize]) {
    if let Some(series) = layout.series {
        key.push_str(cell(cells, ends, series).trim());
    }
    if layout.labels.is_empty() {
        return;
    }
    key.push('{');
    for (n, (column, name)) in layout.labels.iter().enumerate() {
        if n > 0 {
            key.push(',');
        }
        key.push_str(name);
        key.push_str("=\"");
        for c in cell(cells, ends, *column).chars() {
            match c {
                '\\' => key.push_str("\\\\"),
                '"' => key.push_str("\\\""),
                '\n' => key.push_str("\\n"),
                c => key.push(c),
            }
        }
        key.push('"');
    }
    key.push('}');
}

fn cell<'a>(cells: &'a str, ends: &[usize], i: usize) -> &'a str {
    let start = if i == 0 { 0 } else { ends[i - 1] };
    &cells[start..ends[i]]
}

fn trim_newline(text: &str) -> &str {
    text.trim_end_matches(['\n', '\r'])
}

/// A number, or `NaN`, `+Inf`, `-Inf` as Prometheus writes them.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

/// Splits one CSV line (RFC 4180 quoting: `"a,b"` and `""` inside quotes)
/// into `cells`, recording where each cell ends.
fn split(line: &str, cells: &mut String, ends: &mut Vec<usize>) -> Result<(), String> {
    cells.clear();
    ends.clear();
    if !line.contains('"') {
        for field in line.split(',') {
            cells.push_str(field);
            ends.push(cells.len());
        }
        return Ok(());
    }
    let mut chars = line.chars().peekable();
    loop {
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        cells.push('"');
                    }
                    Some('"') => break,
                    Some(c) => cells.push(c),
                    None => return Err("a quoted field is not closed".to_owned()),
                }
            }
        }
        loop {
            match chars.next() {
                Some(',') | None => break,
                Some(c) if quoted => {
                    return Err(format!("{c:?} after the closing quote of a field"));
                }
                Some(c) => cells.push(c),
            }
        }
        ends.push(cells.len());
        if chars.peek().is_none() && !line.ends_with(',') {
            return Ok(());
        }
        if chars.peek().is_none() {
            ends.push(cells.len());
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<Result<(String, i64, f64), InputError>> {
        let mut csv = CsvSamples::new(text.as_bytes()).unwrap();
        let mut out = Vec::new();
        while let Some(row) = csv.next_row() {
            out.push(row.map(|r| (r.series.to_owned(), r.at_ms, r.value)));
        }
        out
    }

    #[test]
    fn single_series_with_every_timestamp_form() {
        let rows = read(
            "timestamp,value\n1700000000,1\n1700000000.25,2\n\
             2023-11-14T22:13:20Z,3\n2023-11-14 22:13:20,4\n2023-11-15T00:13:20+02:00,5\n",
        );
        let at: Vec<i64> = rows.iter().map(|r| r.as_ref().unwrap().1).collect();
        let s = 1_700_000_000_000;
        assert_eq!(at, [s, s + 250, s, s, s]);
    }

    #[test]
    fn label_columns_identify_the_series() {
        let rows = read("model,timestamp,value,env\nfraud,1,0.9,prod\n\"a,\"\"b\"\"\",2,0.8,dev\n");
        assert_eq!(rows[0].as_ref().unwrap().0, r#"{env="prod",model="fraud"}"#);
        assert_eq!(
            rows[1].as_ref().unwrap().0,
            r#"{env="dev",model="a,\"b\""}"#
        );
    }

    #[test]
    fn long_form_names_the_series() {
        let rows = read("series,timestamp,value\nacc,1,0.9\nlat,1,0.2\n");
        assert_eq!(rows[1].as_ref().unwrap().0, "lat");
    }

    #[test]
    fn malformed_rows_are_reported_by_line_and_reading_goes_on() {
        let rows = read("timestamp,value\n1,1\n\nyesterday,2\n3,abc\n4\n5,\"x\n6,6\n");
        let lines: Vec<String> = rows
            .iter()
            .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
            .collect();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(
            lines[0].starts_with("line 4: timestamp \"yesterday\""),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("line 5: value \"abc\""),
            "{}",
            lines[1]
        );
        assert!(lines[2].starts_with("line 6: 1 fields"), "{}", lines[2]);
        assert!(
            lines[3].starts_with("line 7: a quoted field"),
            "{}",
            lines[3]
        );
        assert_eq!(rows.last().unwrap().as_ref().unwrap().1, 6000);
    }

    #[test]
    fn a_header_without_value_is_refused() {
        let err = CsvSamples::new("time,value\n".as_bytes()).err().unwrap();
        assert!(err.to_string().contains("no `timestamp` column"), "{err}");
        assert!(matches!(
            CsvSamples::new("".as_bytes()),
            Err(InputError::Empty)
        ));
    }

    #[test]
    fn quoted_split_keeps_empty_last_field() {
        let (mut cells, mut ends) = (String::new(), Vec::new());
        split("\"a\",", &mut cells, &mut ends).unwrap();
        assert_eq!(ends.len(), 2);
        split("a,", &mut cells, &mut ends).unwrap();
        assert_eq!(ends.len(), 2);
    }
}
