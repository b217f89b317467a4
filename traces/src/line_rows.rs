//! A CSV row reader for simple, large files: one line is one row, split at its commas with
//! `memchr`, nothing allocated per row. Lines with a quote or a stray CR — the rare rows that
//! need CSV's full grammar — go to the csv crate, joined with the lines that follow while a
//! quoted field stays open (each line end read as an LF, as `rows::open_lines` reads it), so that every file reads as the csv crate reads it (fields, empty
//! lines skipped, CRLF or LF line ends, a UTF-8 byte-order mark) with each row on the line of
//! the file it starts on.
//!
//! Why: the csv crate's byte-by-byte state machine cost about 415 instructions per row of a
//! plain `time,func,duration` trace, most of its reading (BENCHMARKS.md, "Traces: the plain-CSV
//! reader").

use std::collections::VecDeque;
use std::io::Read;

/// Bytes read from the input at a time.
const CHUNK: usize = 1 << 16;

/// A row as read: its line in the file and its fields as byte ranges — of the reader's input
/// buffer for a simple line (not copied), else of its own `text`. Read its fields through
/// [`LineRows::bytes`] and [`LineRows::field`], before the next row is read.
#[derive(Default)]
pub struct Row {
    pub line: u64,
    in_input: bool,
    text: Vec<u8>,
    ends: Vec<(usize, usize)>,
}

impl Row {
    /// How many fields it has.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether it has no field (never, for a row read).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Fills the row from a simple line, split at every comma (a plain loop: fields are a few
    /// bytes, shorter than a vectorised search needs to pay off). False, and the row unusable,
    /// when the line has a quote or a CR: it needs the csv crate.
    fn split(&mut self, line: u64, input: &[u8], (a, b): (usize, usize), plain: bool) -> bool {
        let text = &input[a..b];
        if !plain && memchr::memchr2(b'"', b'\r', text).is_some() {
            return false;
        }
        (self.line, self.in_input) = (line, true);
        self.ends.clear();
        let mut start = a;
        for (i, &c) in text.iter().enumerate() {
            if c == b',' {
                self.ends.push((start, a + i));
                start = a + i + 1;
            }
        }
        self.ends.push((start, b));
        true
    }

    /// Fills the row from a record the csv crate read, on `line`.
    fn set(&mut self, line: u64, record: &csv::ByteRecord) {
        (self.line, self.in_input) = (line, false);
        self.text.clear();
        self.ends.clear();
        for field in record {
            let start = self.text.len();
            self.text.extend_from_slice(field);
            self.ends.push((start, self.text.len()));
        }
    }
}

/// Reads rows from `input` one at a time (see the module doc).
pub struct LineRows<R> {
    input: R,
    /// Input read but not yet split into lines: `chunk[start..end]`.
    chunk: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// The first quote or CR in `chunk` at or after the line being read, if looked for since
    /// the chunk last changed: lines before it need no check of their own (one vectorised
    /// search serves many lines of a file without quotes).
    special: Option<usize>,
    /// Lines read so far (the line number of the last one).
    line: u64,
    /// Where the search for the next line end resumes: no LF lies in `chunk[start..searched]`.
    searched: usize,
    /// Rows of a line the csv crate parsed (or its refusal), still to hand out, with their lines.
    pending: VecDeque<(u64, Result<csv::ByteRecord, String>)>,
    /// The line or lines being parsed.
    raw: Vec<u8>,
}

/// What [`LineRows::next`] found.
pub enum Next {
    /// The next row is in the row given.
    Row,
    /// The csv crate refused the text starting at this line, for this reason.
    Bad(u64, String),
    End,
}

impl<R: Read> LineRows<R> {
    pub fn new(input: R) -> Self {
        LineRows {
            input,
            chunk: Vec::new(),
            start: 0,
            end: 0,
            eof: false,
            special: None,
            line: 0,
            searched: 0,
            pending: VecDeque::new(),
            raw: Vec::new(),
        }
    }

    /// The next line: the range of `chunk` without its line end, and where its line end ends;
    /// `None` at the end of the input.
    fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            let from = self.searched;
            if let Some(i) = memchr::memchr(b'\n', &self.chunk[from..self.end]) {
                let (a, mut b) = (self.start, from + i);
                self.start = b + 1;
                if b > a && self.chunk[b - 1] == b'\r' {
                    b -= 1;
                }
                return Ok(Some(self.counted(a, b, self.start)));
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let (a, b) = (self.start, self.end);
                self.start = b;
                return Ok(Some(self.counted(a, b, b)));
            }
            self.read_more()?;
        }
    }

    /// Keeps the partial line at the start of `chunk` and reads more input after it. The
    /// buffer keeps its length between reads (zeroed once, when it grows) and at least doubles
    /// when a line outgrows it, so that a long line costs linear time.
    fn read_more(&mut self) -> std::io::Result<()> {
        self.special = None;
        self.searched = self.end - self.start;
        if self.start > 0 {
            self.chunk.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.chunk.len() < self.end + CHUNK {
            let grown = (self.end + CHUNK).max(2 * self.chunk.len());
            self.chunk.resize(grown, 0);
        }
        let n = loop {
            match self.input.read(&mut self.chunk[self.end..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.end += n;
        self.eof = n == 0;
        Ok(())
    }

    /// Counts line `a..b` (ending at `end` with its line end), stepping over a byte-order mark
    /// at the start of the file.
    fn counted(&mut self, a: usize, b: usize, end: usize) -> Line {
        self.line += 1;
        self.searched = self.start;
        if self.line == 1 && self.chunk[a..b].starts_with(b"\xEF\xBB\xBF") {
            return Line { a: a + 3, b, end };
        }
        Line { a, b, end }
    }

    /// Reads the next line into `raw`, with its line end as an LF; false at the end of the
    /// input.
    fn read_line(&mut self) -> std::io::Result<bool> {
        self.raw.clear();
        match self.next_line()? {
            Some(line) => {
                self.keep_raw(line);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Puts `line` into `raw`, its line end (if it has one) as an LF.
    fn keep_raw(&mut self, Line { a, b, end }: Line) {
        self.raw.clear();
        self.raw.extend_from_slice(&self.chunk[a..b]);
        if end > b {
            self.raw.push(b'\n');
        }
    }

    /// Field `i` of `row` (the row [`LineRows::next`] gave last), as bytes.
    pub fn bytes<'a>(&'a self, row: &'a Row, i: usize) -> &'a [u8] {
        let (a, b) = row.ends[i];
        if row.in_input {
            &self.chunk[a..b]
        } else {
            &row.text[a..b]
        }
    }

    /// Field `i` of `row` as text, or why it is not.
    pub fn field<'a>(&'a self, row: &'a Row, i: usize) -> Result<&'a str, String> {
        std::str::from_utf8(self.bytes(row, i))
            .map_err(|e| format!("is not valid UTF-8 (byte {} of the field)", e.valid_up_to()))
    }

    /// The next row, into `row`.
    pub fn next(&mut self, row: &mut Row) -> std::io::Result<Next> {
        loop {
            match self.pending.pop_front() {
                Some((line, Ok(record))) => {
                    row.set(line, &record);
                    return Ok(Next::Row);
                }
                Some((line, Err(message))) => return Ok(Next::Bad(line, message)),
                None => {}
            }
            let Some(line @ Line { a, b, .. }) = self.next_line()? else {
                return Ok(Next::End);
            };
            if a == b {
                continue;
            }
            let special = match self.special {
                Some(s) if s >= a => s,
                _ => {
                    let s = memchr::memchr2(b'"', b'\r', &self.chunk[a..self.end]).map_or(self.end, |i| a + i);
                    self.special = Some(s);
                    s
                }
            };
            if row.split(self.line, &self.chunk, (a, b), b <= special) {
                return Ok(Next::Row);
            }
            self.keep_raw(line);
            self.parse_with_csv()?;
        }
    }

    /// Parses the line in `raw` (and the lines after it while a quote stays open) with the
    /// csv crate, queueing its rows.
    fn parse_with_csv(&mut self) -> std::io::Result<()> {
        // An empty line first, which the csv crate skips: it strips a byte-order mark at the
        // start of its input, which is not the start of the file here.
        let (first, mut text) = (self.line - 1, b"\n".to_vec());
        text.append(&mut self.raw);
        let mut quotes = QuoteState::new();
        if memchr::memchr(b'"', &text).is_some() {
            quotes.feed(&text);
            while quotes.open() && self.read_line()? {
                quotes.feed(&self.raw);
                text.extend_from_slice(&self.raw);
            }
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_slice());
        let mut record = csv::ByteRecord::new();
        let mut lines = LineCounter::default();
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(false) => return Ok(()),
                Ok(true) => {
                    let line = first + lines.line_of(&text, record.position());
                    self.pending.push_back((line, Ok(record.clone())));
                }
                Err(e) => {
                    let line = first + lines.line_of(&text, e.position());
                    self.pending.push_back((line, Err(e.to_string())));
                    return Ok(());
                }
            }
        }
    }
}

/// A line as [`LineRows::next_line`] finds it in `chunk`: `a..b` without its line end, which
/// ends at `end`.
#[derive(Clone, Copy)]
struct Line {
    a: usize,
    b: usize,
    end: usize,
}

/// Counts the lines of a text up to positions the csv crate reports, in increasing order,
/// each byte looked at once.
#[derive(Default)]
struct LineCounter {
    at: usize,
    lfs: u64,
}

impl LineCounter {
    /// Lines after the first of `text` up to a row the csv crate reports at `position`: the
    /// LFs before it and, since the csv crate reports a row that follows empty lines at the
    /// first of them, the empty lines it starts on.
    fn line_of(&mut self, text: &[u8], position: Option<&csv::Position>) -> u64 {
        let at = position.map_or(0, |p| p.byte() as usize).clamp(self.at, text.len());
        self.lfs += memchr::memchr_iter(b'\n', &text[self.at..at]).count() as u64;
        self.at = at;
        let empty = text[at..].iter().take_while(|&&b| b == b'\n').count();
        self.lfs + empty as u64
    }
}

/// Whether the text fed so far leaves a quoted field open, so that the csv crate would read on
/// into the next line: the csv state machine itself, fed line by line (each byte once).
#[derive(Clone)]
struct QuoteState(csv_core::Reader);

impl QuoteState {
    fn new() -> Self {
        QuoteState(csv_core::Reader::new())
    }

    /// Runs the state machine over `input` (never empty: an empty input means its end).
    fn feed(&mut self, mut input: &[u8]) {
        let (mut out, mut ends) = ([0u8; 1024], [0usize; 64]);
        while !input.is_empty() {
            let (result, read, ..) = self.0.read_record(input, &mut out, &mut ends);
            input = &input[read..];
            if result == csv_core::ReadRecordResult::End {
                break;
            }
        }
    }

    /// Whether a row is still pending: at the end of the input (on a copy), the state
    /// machine hands out a row only if one was left open.
    fn open(&self) -> bool {
        let mut end = self.clone();
        let (mut out, mut ends) = ([0u8; 1024], [0usize; 64]);
        let (result, ..) = end.0.read_record(&[], &mut out, &mut ends);
        result == csv_core::ReadRecordResult::Record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row of `text` as (line, fields), or the line the csv crate refused.
    fn rows(text: &[u8]) -> Vec<Result<(u64, Vec<String>), u64>> {
        let mut reader = LineRows::new(text);
        let mut row = Row::default();
        let mut out = Vec::new();
        loop {
            match reader.next(&mut row).unwrap() {
                Next::Row => {
                    let fields = (0..row.len())
                        .map(|i| reader.field(&row, i).unwrap().to_string())
                        .collect();
                    out.push(Ok((row.line, fields)));
                }
                Next::Bad(line, _) => out.push(Err(line)),
                Next::End => return out,
            }
        }
    }

    #[test]
    fn a_quote_open_over_many_lines_is_one_field_with_its_line_ends() {
        let mut text = b"a,\"x\r\n".to_vec();
        for _ in 0..1000 {
            text.extend_from_slice(b"y\r\n");
        }
        text.extend_from_slice(b"\",b\nc,d\n");
        let got = rows(&text);
        let field = format!("x\n{}", "y\n".repeat(1000));
        assert_eq!(got[0], Ok((1, vec!["a".into(), field, "b".into()])));
        assert_eq!(got[1], Ok((1003, vec!["c".into(), "d".into()])));
    }

    #[test]
    fn a_quote_left_open_at_the_end_keeps_the_last_line_end() {
        assert_eq!(rows(b"a,\"x\ny\n"), vec![Ok((1, vec!["a".into(), "x\ny\n".into()]))]);
        assert_eq!(rows(b"a,\"x\ny"), vec![Ok((1, vec!["a".into(), "x\ny".into()]))]);
    }

    #[test]
    fn a_line_longer_than_the_buffer_is_read_whole() {
        let long = "z".repeat(5 * CHUNK + 17);
        let text = format!("1,{long}\n2,w\n");
        assert_eq!(
            rows(text.as_bytes()),
            vec![Ok((1, vec!["1".into(), long])), Ok((2, vec!["2".into(), "w".into()]))]
        );
    }
}
