//! Quantizing an f32 checkpoint to version 2 (int8 in groups) in memory when it is loaded.

use std::path::Path;

use super::header::{parse_header, versioned_header, Config, VERSIONED_HEADER_BYTES};
use super::layout::{file_bytes, layout, Storage, Tensor};
use super::Checkpoint;
use crate::error::{Error, Result};
use zhllama_kernels::MatRef;

/// Quantizing an f32 checkpoint when it is loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quantize {
    /// Run the weights as stored.
    #[default]
    None,
    /// int8 in groups (FORMATS.md §1.3), as the exporter's `llama2c-int8` would write them;
    /// `group_size` `None` picks the default ([`choose_group_size`]). A checkpoint that is
    /// already int8 is used as it is (a requested group size must then match its own).
    Q8 {
        /// Values per group; must divide dim and hidden.
        group_size: Option<usize>,
    },
}

impl std::str::FromStr for Quantize {
    type Err = Error;
    fn from_str(s: &str) -> Result<Quantize> {
        match s {
            "" | "none" | "f32" => Ok(Quantize::None),
            "q8" | "int8" => Ok(Quantize::Q8 { group_size: None }),
            other => Err(Error::bad_arg(format!(
                "unknown quantization {other:?} (expected q8 or none)"
            ))),
        }
    }
}

/// The int8 group size for a model: `requested` when it divides dim and hidden (else an
/// error), by default the largest of 64, 32, 16, … that divides both.
pub fn choose_group_size(dim: usize, hidden_dim: usize, requested: Option<usize>) -> Result<usize> {
    match requested {
        Some(gs) if gs == 0 || !dim.is_multiple_of(gs) || !hidden_dim.is_multiple_of(gs) => {
            Err(Error::bad_arg(format!(
            "group size {gs} must be positive and divide both dim {dim} and hidden_dim {hidden_dim}"
        )))
        }
        Some(gs) => Ok(gs),
        None => {
            let mut gs = 64;
            while gs > 1 && !(dim.is_multiple_of(gs) && hidden_dim.is_multiple_of(gs)) {
                gs /= 2;
            }
            Ok(gs)
        }
    }
}

impl Checkpoint {
    /// This f32 checkpoint as a version-2 image in memory (the bytes the exporter would
    /// write), read back through the same validation and layout as a file.
    pub(super) fn quantized(&self, path: &Path, gs: usize) -> Result<Checkpoint> {
        let c = &self.config;
        let target = Config {
            version: 2,
            group_size: gs,
            ..c.clone()
        };
        let len = file_bytes(&target, VERSIONED_HEADER_BYTES) as usize;
        let mut img = memmap2::MmapOptions::new()
            .len(len)
            .map_anon()
            .map_err(|e| Error::io(path, e))?;
        // the same transparent huge pages as a big file gets (see `map_weights`); a hint
        #[cfg(target_os = "linux")]
        let _ = img.advise(memmap2::Advice::HugePage);
        img[..VERSIONED_HEADER_BYTES].copy_from_slice(&versioned_header(c, gs));
        let (st, w) = (&self.storage, &self.layout);
        let mut at = VERSIONED_HEADER_BYTES;
        let mut scales = Vec::new();
        for &t in Tensor::order(2) {
            let (count, _, _) = t.shape(c);
            if !t.is_matrix() {
                for r in w.norms(t).iter().take(count) {
                    for v in st.slice(r) {
                        img[at..at + 4].copy_from_slice(&v.to_le_bytes());
                        at += 4;
                    }
                }
                continue;
            }
            for m in w.matrices(t).iter().take(count) {
                let MatRef::F32 { w: vals, .. } = st.mat(m) else {
                    unreachable!("an f32 checkpoint holds f32 matrices")
                };
                let q = &mut img[at..at + vals.len()];
                // SAFETY: i8 and u8 have the same size and alignment; `q` is not used meanwhile.
                let q =
                    unsafe { std::slice::from_raw_parts_mut(q.as_mut_ptr().cast::<i8>(), q.len()) };
                scales.clear();
                scales.resize(vals.len() / gs, 0.0f32);
                zhllama_kernels::quantize_groups(vals, gs, q, &mut scales, f32::round_ties_even);
                at += vals.len();
                for sc in &scales {
                    img[at..at + 4].copy_from_slice(&sc.to_le_bytes());
                    at += 4;
                }
            }
        }
        debug_assert_eq!(at, len);
        let map = img.make_read_only().map_err(|e| Error::io(path, e))?;
        let (config, body_start) = parse_header(path, &map[..VERSIONED_HEADER_BYTES], len as u64)?;
        let (mut layout, scales) = layout(&config, body_start, &map);
        let storage = Storage::new(map, scales, &mut layout);
        Ok(Checkpoint {
            config,
            layout,
            storage,
        })
    }
}
