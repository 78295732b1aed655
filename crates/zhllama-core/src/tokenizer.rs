//! The llama2.c tokenizer file (FORMATS.md §2): loading both byte-token formats, a
//! sentencepiece-exact BPE encoder, and a decoder that emits whole UTF-8 characters.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;

use crate::error::{Error, Result};

/// Id of the unknown token.
pub const UNK: u32 = 0;
/// Id of the beginning-of-sequence token.
pub const BOS: u32 = 1;
/// Id of the end-of-sequence token.
pub const EOS: u32 = 2;

/// Largest tokenizer file we are willing to read (real ones are tens of kilobytes).
const MAX_FILE_BYTES: u64 = 256 << 20;

/// How the byte-fallback tokens (ids 3..=258) are spelled in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteFormat {
    /// `<0xXX>`, as current writers store them.
    Hex,
    /// The UTF-8 encoding of the Latin-1 character (older writers, e.g. the seed's `tok5000.bin`).
    Latin1,
    /// The vocabulary has no byte-fallback tokens.
    None,
}

/// A BPE tokenizer read from a llama2.c `tokenizer.bin`.
///
/// Ids 0, 1, 2 are `<unk>`, BOS and EOS; ids 3..=258 are byte tokens when the file spells them
/// as such (either format); everything else is a normal piece whose sentencepiece `▁` is
/// stored as a plain space.
#[derive(Clone, Debug)]
pub struct Tokenizer {
    pieces: Vec<Vec<u8>>,
    scores: Vec<f32>,
    /// `byte_of[id]`: the raw byte a byte token stands for.
    byte_of: Vec<Option<u8>>,
    /// `byte_id[b]`: the byte token of byte `b`.
    byte_id: [Option<u32>; 256],
    /// Text → id for normal pieces only (never control or byte tokens).
    lookup: HashMap<Vec<u8>, u32>,
    max_token_length: u32,
    byte_format: ByteFormat,
}

#[derive(Clone, Copy)]
struct Sym {
    start: u32,
    end: u32,
    id: u32,
    prev: u32,
    next: u32,
    mergeable: bool,
    alive: bool,
}

const NONE: u32 = u32::MAX;

#[derive(PartialEq)]
struct Cand {
    score: f32,
    left: u32,
    right: u32,
    left_start: u32,
    left_end: u32,
    right_end: u32,
    id: u32,
}

impl Eq for Cand {}

impl Ord for Cand {
    fn cmp(&self, o: &Self) -> Ordering {
        // Max-heap: highest score first, then the leftmost pair.
        self.score
            .total_cmp(&o.score)
            .then(o.left_start.cmp(&self.left_start))
    }
}

impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// Entries read so far and the offset where reading stopped.
type Entries<'a> = (Vec<(f32, &'a [u8])>, usize);

/// Reads entries (score, length, bytes) from `data`; stops at `limit` entries or at the end.
/// Returns the entries and the offset where reading stopped, or an error message.
fn read_entries(data: &[u8], limit: usize) -> std::result::Result<Entries<'_>, String> {
    let mut at = 4usize;
    let mut out = Vec::new();
    while out.len() < limit && at < data.len() {
        if data.len() - at < 8 {
            return Err(format!("entry {} is cut off at byte {at}", out.len()));
        }
        let score = f32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
        let len = u32::from_le_bytes(data[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        at += 8;
        if len > data.len() - at {
            return Err(format!(
                "entry {} claims {len} bytes but only {} remain",
                out.len(),
                data.len() - at
            ));
        }
        out.push((score, &data[at..at + len]));
        at += len;
    }
    Ok((out, at))
}

fn latin1_utf8(b: u8) -> Vec<u8> {
    char::from(b).to_string().into_bytes()
}

fn hex_name(b: u8) -> Vec<u8> {
    format!("<0x{b:02X}>").into_bytes()
}

/// Sentencepiece's normalization, with the dummy prefix: leading ASCII spaces are skipped, a
/// run of ASCII spaces becomes one, a literal `▁` (U+2581) in the text stands for a space but
/// never collapses with its neighbours, every trailing space or `▁` goes, and a non-empty result
/// gets one space in front. The result spells `▁` as a space, as the tokenizer file does.
fn normalize(text: &str) -> String {
    let mut norm = String::with_capacity(text.len() + 1);
    norm.push(' ');
    let mut prev_space = true;
    for ch in text.chars() {
        match ch {
            ' ' if prev_space => {}
            ' ' => {
                norm.push(' ');
                prev_space = true;
            }
            '\u{2581}' => {
                norm.push(' ');
                prev_space = false;
            }
            c => {
                norm.push(c);
                prev_space = false;
            }
        }
    }
    while norm.ends_with(' ') {
        norm.pop();
    }
    norm
}

/// Whether `data` starts like a sentencepiece `ModelProto` (protobuf): field 1 (`pieces`,
/// length-delimited) holding a non-empty message whose own field 1 (the piece string) comes
/// first. A tokenizer.bin starts with its max token length as a little-endian u32, whose bytes
/// 1-3 are zero for any real tokenizer, so the two cannot be confused.
fn is_sentencepiece_model(data: &[u8]) -> bool {
    if data.first() != Some(&0x0A) {
        return false;
    }
    // the varint length of the first piece
    let mut len = 0u64;
    for (i, &b) in data.iter().skip(1).take(5).enumerate() {
        len |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return len > 0 && data.get(i + 2) == Some(&0x0A);
        }
    }
    false
}

impl Tokenizer {
    /// Reads a tokenizer file.
    ///
    /// `vocab_size` is the model's vocab size: the file must hold exactly that many entries
    /// (a clear error naming both numbers otherwise). `None` takes every entry the file holds.
    pub fn from_file(path: impl AsRef<Path>, vocab_size: Option<usize>) -> Result<Tokenizer> {
        let path = path.as_ref();
        let (file, len) = crate::error::open_regular(path, "tokenizer")?;
        if len > MAX_FILE_BYTES {
            return Err(Error::bad_file(
                path,
                format!("{len} bytes is far too large for a tokenizer file; is it a checkpoint?"),
            ));
        }
        // Never more than the size it had when opened, plus one byte to notice growth.
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, len + 1), &mut data)
            .map_err(|e| Error::io(path, e))?;
        if data.len() as u64 > len {
            return Err(Error::bad_file(path, "file grew while it was being read"));
        }
        if is_sentencepiece_model(&data) {
            return Err(Error::bad_file(
                path,
                "this is a sentencepiece .model file, not a llama2.c tokenizer.bin: pass the .bin \
                 made from it (`zhllama tokenizer export FILE.model` writes FILE.bin; \
                 `zhllama tokenizer train` writes one beside the .model)",
            ));
        }
        Self::from_bytes(&data, vocab_size).map_err(|msg| Error::bad_file(path, msg))
    }

    /// Parses tokenizer bytes (the contents of a `tokenizer.bin`); see [`Tokenizer::from_file`].
    /// The error is a one-line message without a file name.
    pub fn from_bytes(
        data: &[u8],
        vocab_size: Option<usize>,
    ) -> std::result::Result<Tokenizer, String> {
        if data.len() < 4 {
            return Err(format!(
                "{} bytes is too short for a tokenizer file",
                data.len()
            ));
        }
        let max_token_length = u32::from_le_bytes(data[0..4].try_into().expect("4 bytes"));
        let want = vocab_size.unwrap_or(usize::MAX);
        let (entries, end) = read_entries(data, want)?;
        if let Some(v) = vocab_size {
            if entries.len() < v || end < data.len() {
                // Count what the file really holds, for a message that names both numbers.
                let held = match read_entries(data, usize::MAX) {
                    Ok((all, e)) if e == data.len() => format!("holds {} entries", all.len()),
                    _ => "is not a valid tokenizer file".to_string(),
                };
                return Err(format!(
                    "tokenizer {held} but the model's vocab size is {v}; was it made for another model?"
                ));
            }
        }
        if entries.len() < 3 {
            return Err(format!(
                "holds {} entries; a tokenizer needs at least <unk>, BOS and EOS",
                entries.len()
            ));
        }
        let n = entries.len();
        let pieces: Vec<Vec<u8>> = entries.iter().map(|(_, b)| b.to_vec()).collect();
        let scores: Vec<f32> = entries.iter().map(|(s, _)| *s).collect();

        // Byte tokens: ids 3..=258, in either spelling (decided by the majority of those ids).
        let mut byte_of = vec![None; n];
        let mut byte_id = [None; 256];
        let (mut hex, mut latin) = (0, 0);
        for b in 0..=255u8 {
            let id = 3 + b as usize;
            if id < n {
                if pieces[id] == hex_name(b) {
                    hex += 1;
                } else if pieces[id] == latin1_utf8(b) {
                    latin += 1;
                }
            }
        }
        let byte_format = if hex == 0 && latin == 0 {
            ByteFormat::None
        } else if hex >= latin {
            ByteFormat::Hex
        } else {
            ByteFormat::Latin1
        };
        if byte_format != ByteFormat::None {
            for b in 0..=255u8 {
                let id = 3 + b as usize;
                if id < n {
                    let want = if byte_format == ByteFormat::Hex {
                        hex_name(b)
                    } else {
                        latin1_utf8(b)
                    };
                    if pieces[id] == want {
                        byte_of[id] = Some(b);
                        byte_id[b as usize] = Some(id as u32);
                    }
                }
            }
        }
        let mut lookup = HashMap::with_capacity(n);
        for (id, p) in pieces.iter().enumerate().skip(3) {
            if byte_of[id].is_none() {
                lookup.entry(p.clone()).or_insert(id as u32);
            }
        }
        Ok(Tokenizer {
            pieces,
            scores,
            byte_of,
            byte_id,
            lookup,
            max_token_length,
            byte_format,
        })
    }

    /// Number of entries (the vocab size).
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The `max_token_length` field of the file (informational).
    pub fn max_token_length(&self) -> u32 {
        self.max_token_length
    }

    /// How the file spells its byte tokens.
    pub fn byte_format(&self) -> ByteFormat {
        self.byte_format
    }

    /// The stored bytes of a piece (a byte token's stored spelling, not its byte), or `None`
    /// for an id beyond the vocab.
    pub fn piece(&self, id: u32) -> Option<&[u8]> {
        self.pieces.get(id as usize).map(|p| p.as_slice())
    }

    /// The score of a piece, or `None` for an id beyond the vocab.
    pub fn score(&self, id: u32) -> Option<f32> {
        self.scores.get(id as usize).copied()
    }

    /// The raw byte a byte-fallback token stands for.
    pub fn byte_of(&self, id: u32) -> Option<u8> {
        self.byte_of.get(id as usize).copied().flatten()
    }

    /// The id of a normal piece with exactly this text (`▁` written as a space); never a
    /// control or byte token.
    pub fn token_id(&self, piece: &str) -> Option<u32> {
        self.lookup.get(piece.as_bytes()).copied()
    }

    /// Encodes text exactly as sentencepiece BPE does (FORMATS.md §2): runs of ASCII spaces
    /// collapse to one and leading/trailing spaces go (a literal `▁` counts as a space that
    /// never collapses, as in sentencepiece); then BOS if `bos`, the `▁` dummy prefix
    /// when the text is not empty, one piece per character (or its UTF-8 bytes as byte tokens,
    /// or `<unk>` when the vocab has neither), highest-score merges first (ties: leftmost),
    /// and EOS if `eos`. Byte tokens never merge. Runs in O(n log n) with a priority queue.
    pub fn encode(&self, text: &str, bos: bool, eos: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() + 3);
        if bos {
            out.push(BOS);
        }
        let norm = normalize(text);
        if !norm.is_empty() {
            self.bpe(norm.as_bytes(), &mut out);
        }
        if eos {
            out.push(EOS);
        }
        out
    }

    fn bpe(&self, text: &[u8], out: &mut Vec<u32>) {
        let s = std::str::from_utf8(text).expect("normalized text is UTF-8");
        let mut syms: Vec<Sym> = Vec::with_capacity(text.len());
        let push = |syms: &mut Vec<Sym>, start: usize, end: usize, id: u32, mergeable: bool| {
            let i = syms.len() as u32;
            syms.push(Sym {
                start: start as u32,
                end: end as u32,
                id,
                prev: if i == 0 { NONE } else { i - 1 },
                next: i + 1,
                mergeable,
                alive: true,
            });
        };
        for (start, ch) in s.char_indices() {
            let end = start + ch.len_utf8();
            if let Some(&id) = self.lookup.get(&text[start..end]) {
                push(&mut syms, start, end, id, true);
            } else {
                for (k, &b) in text[start..end].iter().enumerate() {
                    let id = self.byte_id[b as usize].unwrap_or(UNK);
                    push(&mut syms, start + k, start + k + 1, id, false);
                }
            }
        }
        if let Some(last) = syms.last_mut() {
            last.next = NONE;
        }
        let mut heap = BinaryHeap::new();
        let cand = |syms: &[Sym], l: u32, r: u32| -> Option<Cand> {
            let (a, b) = (&syms[l as usize], &syms[r as usize]);
            if !a.mergeable || !b.mergeable {
                return None;
            }
            let id = *self.lookup.get(&text[a.start as usize..b.end as usize])?;
            Some(Cand {
                score: self.scores[id as usize],
                left: l,
                right: r,
                left_start: a.start,
                left_end: a.end,
                right_end: b.end,
                id,
            })
        };
        for i in 1..syms.len() as u32 {
            if let Some(c) = cand(&syms, i - 1, i) {
                heap.push(c);
            }
        }
        while let Some(c) = heap.pop() {
            let (a, b) = (syms[c.left as usize], syms[c.right as usize]);
            if !a.alive
                || !b.alive
                || a.next != c.right
                || a.end != c.left_end
                || b.end != c.right_end
            {
                continue; // stale
            }
            // merge right into left
            let l = &mut syms[c.left as usize];
            l.end = b.end;
            l.id = c.id;
            l.next = b.next;
            syms[c.right as usize].alive = false;
            if b.next != NONE {
                syms[b.next as usize].prev = c.left;
                if let Some(n) = cand(&syms, c.left, b.next) {
                    heap.push(n);
                }
            }
            if a.prev != NONE {
                if let Some(n) = cand(&syms, a.prev, c.left) {
                    heap.push(n);
                }
            }
        }
        let mut i = if syms.is_empty() { NONE } else { 0 };
        while i != NONE {
            out.push(syms[i as usize].id);
            i = syms[i as usize].next;
        }
    }

    /// The bytes token `id` contributes to text when it follows `prev`: a byte token's raw
    /// byte; a piece's bytes, without the leading space right after BOS (sentencepiece drops
    /// the dummy prefix). Control tokens contribute their stored text, as in run.c; an id beyond
    /// the vocab contributes nothing.
    pub fn piece_bytes(&self, prev: u32, id: u32) -> &[u8] {
        static BYTES: [u8; 256] = {
            let mut a = [0u8; 256];
            let mut i = 0;
            while i < 256 {
                a[i] = i as u8;
                i += 1;
            }
            a
        };
        if let Some(b) = self.byte_of(id) {
            return &BYTES[b as usize..b as usize + 1];
        }
        match self.pieces.get(id as usize) {
            Some(p) if prev == BOS && p.first() == Some(&b' ') => &p[1..],
            Some(p) => p,
            None => &[],
        }
    }

    /// Decodes ids to text the way sentencepiece does: BOS and EOS produce nothing, the first
    /// piece (and the first after a BOS) loses its leading space, byte tokens become their
    /// raw bytes, and the bytes are read as UTF-8 with one U+FFFD per maximal invalid subpart
    /// (as `String::from_utf8_lossy`). Errors on an id beyond the vocab.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut bytes = Vec::new();
        let mut prev = BOS;
        for &id in ids {
            if id as usize >= self.pieces.len() {
                return Err(Error::bad_arg(format!(
                    "token id {id} is outside the vocab (size {})",
                    self.pieces.len()
                )));
            }
            if id != BOS && id != EOS {
                bytes.extend_from_slice(self.piece_bytes(prev, id));
            }
            prev = id;
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Turns a stream of bytes into whole UTF-8 characters as they complete.
///
/// The concatenation of everything [`Utf8Stream::push`] and [`Utf8Stream::finish`] return
/// equals `String::from_utf8_lossy` of all the bytes pushed: a character split over several
/// pushes comes out once complete, and a sequence that can never become valid becomes U+FFFD,
/// one per maximal invalid subpart.
#[derive(Clone, Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// A stream with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes; returns the text that is now complete (possibly empty).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut buf: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(buf) {
                Ok(s) => {
                    out.push_str(s);
                    buf = &[];
                    break;
                }
                Err(e) => {
                    let (valid, rest) = buf.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            buf = &rest[n..];
                        }
                        None => {
                            buf = rest;
                            break;
                        }
                    }
                }
            }
        }
        self.pending = buf.to_vec();
        out
    }

    /// Ends the stream: an incomplete character left over becomes one U+FFFD.
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds tokenizer bytes from (piece, score) pairs.
    pub(crate) fn build(pieces: &[(&[u8], f32)]) -> Vec<u8> {
        let mut out = 16u32.to_le_bytes().to_vec();
        for (p, s) in pieces {
            out.extend_from_slice(&s.to_le_bytes());
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(p);
        }
        out
    }

    fn toy(latin: bool) -> Tokenizer {
        let mut v: Vec<(Vec<u8>, f32)> = vec![
            (b"<unk>".to_vec(), 0.0),
            (b"\n<s>\n".to_vec(), 0.0),
            (b"\n</s>\n".to_vec(), 0.0),
        ];
        for b in 0..=255u8 {
            v.push((if latin { latin1_utf8(b) } else { hex_name(b) }, 0.0));
        }
        for (p, s) in [
            (" ", -1.0),
            ("a", -2.0),
            ("b", -3.0),
            ("ab", -4.0),
            (" ab", -5.0),
            ("中", -6.0),
        ] {
            v.push((p.as_bytes().to_vec(), s));
        }
        let refs: Vec<(&[u8], f32)> = v.iter().map(|(p, s)| (p.as_slice(), *s)).collect();
        Tokenizer::from_bytes(&build(&refs), None).unwrap()
    }

    #[test]
    fn encodes_and_decodes_in_both_formats() {
        for latin in [false, true] {
            let t = toy(latin);
            let sp = t.token_id(" ").unwrap();
            assert_eq!(sp, 259);
            assert_eq!(t.encode("", true, false), vec![BOS]);
            assert_eq!(t.encode("   ", false, false), Vec::<u32>::new());
            let ab = t.encode("  ab  ab ", true, true);
            assert_eq!(ab, vec![BOS, 263, 263, EOS]);
            // é is not in the vocab: bytes 0xC3 0xA9
            let e = t.encode("é中", false, false);
            assert_eq!(e, vec![sp, 3 + 0xC3, 3 + 0xA9, 264]);
            assert_eq!(t.decode(&e).unwrap(), "é中");
            assert_eq!(t.decode(&[3 + 0xC3]).unwrap(), "\u{FFFD}");
        }
    }

    #[test]
    fn utf8_stream_matches_lossy() {
        let cases: [&[u8]; 5] = [
            b"abc",
            "中文".as_bytes(),
            b"\xe4\xb8",
            b"\xff\xe4\xb8a\xf0\x9f\x98\x80",
            b"\xed\xa0\x80x",
        ];
        for c in cases {
            let mut s = Utf8Stream::new();
            let mut got = String::new();
            for b in c {
                got.push_str(&s.push(&[*b]));
            }
            got.push_str(&s.finish());
            assert_eq!(got, String::from_utf8_lossy(c));
        }
    }

    #[test]
    fn vocab_mismatch_names_both_numbers() {
        let t = build(&[(b"<unk>", 0.0), (b"a", 0.0), (b"b", 0.0), (b"c", 0.0)]);
        let e = Tokenizer::from_bytes(&t, Some(3)).unwrap_err();
        assert!(e.contains("4 entries") && e.contains("3"), "{e}");
        let e = Tokenizer::from_bytes(&t, Some(5)).unwrap_err();
        assert!(e.contains("4 entries") && e.contains("5"), "{e}");
    }
}
