//! Reading llama2.c checkpoints (FORMATS.md §1): version 0 (legacy, no magic), version 1
//! (fp32 with a 256-byte header) and version 2 (int8 in groups with f32 scales); and quantizing
//! an f32 checkpoint to version 2 in memory at load time ([`Quantize`]).
//!
//! The file is memory-mapped. Its header is parsed and validated — positive sizes, heads divide
//! dim, kv heads divide heads, sane upper limits, and an exact expected file size — before any
//! offset into the body is computed, so a truncated, padded or corrupted file is an
//! [`Error::BadFile`] and never an out-of-bounds read, a panic or a huge allocation. For
//! version 2 the group size must divide dim and hidden (every quantized row is one of those
//! long): anything else is an error, never silent truncation.
//!
//! - `header`: the [`Config`] and its validation against the file size;
//! - `layout`: the one table of tensors per version, and where each lies;
//! - `quantize`: [`Quantize`] and the int8 image built in memory from an f32 checkpoint.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};

mod header;
mod layout;
mod quantize;

pub use header::{Config, MAGIC};
pub(crate) use layout::{Layout, Storage};
pub use quantize::{choose_group_size, Quantize};

#[cfg(target_endian = "big")]
compile_error!(
    "zhllama-core reads little-endian files in place and supports little-endian targets only"
);

/// A loaded, validated checkpoint.
pub(crate) struct Checkpoint {
    pub config: Config,
    pub layout: Layout,
    pub storage: Storage,
}

/// Files at least this big are copied into memory backed by transparent huge pages (Linux):
/// every token streams all weights once, and with 4 KiB pages the TLB misses and the hardware
/// prefetcher stopping at each page boundary cost a share of the bandwidth.
const HUGE_PAGE_MIN_BYTES: u64 = 8 << 20;

/// Maps the file's bytes: a read-only file mapping, or for big files on Linux an anonymous
/// huge-page mapping filled from the file (`ZHLLAMA_NO_HUGEPAGES=1` turns that off).
fn map_weights(file: &File, path: &Path, file_len: u64) -> Result<memmap2::Mmap> {
    #[cfg(target_os = "linux")]
    if file_len >= HUGE_PAGE_MIN_BYTES && std::env::var_os("ZHLLAMA_NO_HUGEPAGES").is_none() {
        use std::io::{Read, Seek};
        let mut anon = memmap2::MmapOptions::new()
            .len(file_len as usize)
            .map_anon()
            .map_err(|e| Error::io(path, e))?;
        let _ = anon.advise(memmap2::Advice::HugePage); // a hint; fine if refused
        let mut f = file;
        f.seek(std::io::SeekFrom::Start(0))
            .map_err(|e| Error::io(path, e))?;
        f.read_exact(&mut anon[..])
            .map_err(|e| Error::io(path, e))?;
        return anon.make_read_only().map_err(|e| Error::io(path, e));
    }
    let _ = HUGE_PAGE_MIN_BYTES;
    // SAFETY: the file is mapped read-only; as with every mmap-based reader, the caller must
    // not truncate the file while the model is alive.
    unsafe { memmap2::Mmap::map(file) }.map_err(|e| Error::io(path, e))
}

/// Reads and validates a checkpoint's header (against the file size too) without loading the
/// weights.
pub fn read_config(path: impl AsRef<Path>) -> Result<Config> {
    let path = path.as_ref();
    let (_, config, _, _) = open_header(path)?;
    Ok(config)
}

/// Opens the file and validates its header: the file, its config, the byte where the body
/// starts, and the file size.
fn open_header(path: &Path) -> Result<(File, Config, usize, u64)> {
    // A FIFO or a device is refused before it is read: its size says nothing about how much
    // it would yield (or it would block), and everything below is bounded by the size.
    let (file, file_len) = crate::error::open_regular(path, "checkpoint")?;
    let mut head = vec![0u8; file_len.min(header::VERSIONED_HEADER_BYTES as u64) as usize];
    {
        use std::io::Read;
        (&file)
            .read_exact(&mut head)
            .map_err(|e| Error::io(path, e))?;
    }
    let (config, body_start) = header::parse_header(path, &head, file_len)?;
    Ok((file, config, body_start, file_len))
}

impl Checkpoint {
    /// Opens a checkpoint and quantizes it as asked.
    pub fn open_with(path: &Path, quantize: Quantize) -> Result<Checkpoint> {
        let ck = Checkpoint::open(path)?;
        let Quantize::Q8 { group_size } = quantize else {
            return Ok(ck);
        };
        let c = &ck.config;
        if c.quantized() {
            if let Some(gs) = group_size.filter(|&gs| gs != c.group_size) {
                return Err(Error::bad_arg(format!(
                    "{} is already int8 with group size {}; cannot requantize it to {gs}",
                    crate::error::quote(path),
                    c.group_size
                )));
            }
            return Ok(ck);
        }
        let gs = choose_group_size(c.dim, c.hidden_dim, group_size)?;
        ck.quantized(path, gs)
    }

    /// Opens, validates and maps a checkpoint.
    pub fn open(path: &Path) -> Result<Checkpoint> {
        let (file, config, body_start, file_len) = open_header(path)?;
        let map = map_weights(&file, path, file_len)?;
        if map.len() as u64 != file_len {
            return Err(Error::bad_file(
                path,
                "file changed size while it was being opened",
            ));
        }
        let (mut layout, scales) = layout::layout(&config, body_start, &map);
        let storage = Storage::new(map, scales, &mut layout);
        Ok(Checkpoint {
            config,
            layout,
            storage,
        })
    }
}
