//! Run-time CPU dispatch: which explicit SIMD kernels this CPU can run, detected once. Every
//! kernel that has an AVX2 or AVX-512 form asks here, so a portable build (no
//! `target-cpu=native`) still uses them where the CPU has them.

use std::sync::OnceLock;

/// Which explicit SIMD kernels this CPU can run (detected once, at run time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simd {
    /// Portable code only.
    None,
    /// AVX2 + FMA.
    Avx2,
    /// AVX2 + FMA and AVX-512 VNNI with 256-bit forms (VL): `vpdpbusd` for int8.
    Vnni,
}

/// The best SIMD level of this CPU; `ZHLLAMA_SIMD=avx2|portable` caps it (for A/B checks).
#[inline]
pub fn simd_level() -> Simd {
    static LEVEL: OnceLock<Simd> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let cap = std::env::var("ZHLLAMA_SIMD").unwrap_or_default();
            if cap == "portable"
                || !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
            {
                return Simd::None;
            }
            if cap != "avx2"
                && is_x86_feature_detected!("avx512vnni")
                && is_x86_feature_detected!("avx512vl")
            {
                return Simd::Vnni;
            }
            Simd::Avx2
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Simd::None
        }
    })
}

#[inline]
pub(crate) fn have_avx2_fma() -> bool {
    simd_level() != Simd::None
}

/// Whether the batched f32 kernels may use 512-bit registers: at the VNNI level (so
/// `ZHLLAMA_SIMD=avx2` turns them off too) and with AVX-512F, detected once.
#[inline]
pub(crate) fn have_avx512f() -> bool {
    static WIDE: OnceLock<bool> = OnceLock::new();
    *WIDE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            simd_level() == Simd::Vnni && is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// The CPU features the kernels look for, each with whether this CPU has it (detected at run
/// time, as the kernels do): what `zhllama-rs --version` reports.
pub fn cpu_features() -> Vec<(&'static str, bool)> {
    #[cfg(target_arch = "x86_64")]
    {
        vec![
            ("avx2", is_x86_feature_detected!("avx2")),
            ("fma", is_x86_feature_detected!("fma")),
            ("avx512f", is_x86_feature_detected!("avx512f")),
            ("avx512vl", is_x86_feature_detected!("avx512vl")),
            ("avx512vnni", is_x86_feature_detected!("avx512vnni")),
        ]
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Vec::new()
    }
}

impl Simd {
    /// What the kernels run at this level, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Simd::None => "portable code (no AVX2+FMA here, or ZHLLAMA_SIMD=portable)",
            Simd::Avx2 => "AVX2+FMA (f32 and int8)",
            Simd::Vnni => "AVX2+FMA for f32 (AVX-512 for batched f32), AVX-512 VNNI for int8",
        }
    }
}
