//! Which SIMD kernels run: the best the CPU has, unless `MNIST_SIMD` asks for less.
//!
//! Every kernel with a SIMD variant also has a portable one that gives the same results to
//! rounding; tests run each level the machine can, so the AVX2 and portable code is exercised on
//! an AVX-512 machine too. `MNIST_SIMD=portable|avx2|avx512` forces a level for a whole run (a
//! level above what the CPU has is refused).

use std::fmt;
use std::str::FromStr;

/// The environment variable that caps the SIMD level.
pub const SIMD_ENV: &str = "MNIST_SIMD";

/// A kernel family, from the plainest to the widest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Plain Rust, vectorized by the compiler for the build's target.
    Portable,
    /// 256-bit AVX2 with FMA.
    Avx2,
    /// 512-bit AVX-512F.
    Avx512,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Portable, Level::Avx2, Level::Avx512];

    /// The widest level this CPU runs.
    pub fn detected() -> Level {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Level::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Level::Avx2;
            }
        }
        Level::Portable
    }

    /// Whether this CPU runs `self`.
    pub fn is_available(self) -> bool {
        self <= Level::detected()
    }

    /// The levels this CPU runs, plainest first: what tests iterate over.
    pub fn available() -> Vec<Level> {
        Level::ALL
            .into_iter()
            .filter(|l| l.is_available())
            .collect()
    }

    /// The level to run at: [`Level::detected`], or [`SIMD_ENV`]'s if set.
    pub fn from_env() -> Result<Level, String> {
        match std::env::var(SIMD_ENV) {
            Ok(value) if !value.is_empty() => {
                let level: Level = value.parse().map_err(|e| format!("{SIMD_ENV}: {e}"))?;
                if level.is_available() {
                    Ok(level)
                } else {
                    Err(format!(
                        "{SIMD_ENV}={value}: this CPU does not support {level} (it has {})",
                        Level::detected()
                    ))
                }
            }
            _ => Ok(Level::detected()),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Portable => "portable",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        })
    }
}

impl FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Level::ALL
            .into_iter()
            .find(|l| l.to_string() == s)
            .ok_or_else(|| format!("unknown SIMD level {s:?}; expected portable, avx2 or avx512"))
    }
}

/// Defines `fn NAME(level: Level, ARGS...)`, which runs BODY compiled for `level`'s instruction
/// set: for kernels written as plain loops over long vectors (Winograd's transforms, pooling),
/// which the compiler widens to the level's registers.
///
/// BODY is an `#[inline(always)]` function called from one `#[target_feature]` function per
/// level, so it is always compiled with the level's features. (Running it in a closure passed to
/// such a function left that to the inliner, which declined once a body grew: the closure was
/// then compiled for the baseline x86-64 and ran at SSE2 speed.) Arguments are plain names.
macro_rules! simd_kernel_impl {
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        $(#[$attr])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name(level: $crate::Level, $($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            #[allow(clippy::too_many_arguments)]
            fn avx512($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            fn avx2($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
            match level {
                // SAFETY: the caller's level is available on this CPU.
                #[cfg(target_arch = "x86_64")]
                $crate::Level::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                $crate::Level::Avx2 => unsafe { avx2($($arg),*) },
                _ => body($($arg),*),
            }
        }
    };
}

pub(crate) use simd_kernel_impl as simd_kernel;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_parse_back() {
        assert!(Level::Portable < Level::Avx2 && Level::Avx2 < Level::Avx512);
        for level in Level::ALL {
            assert_eq!(level.to_string().parse::<Level>().unwrap(), level);
        }
        assert!("sse".parse::<Level>().unwrap_err().contains("portable"));
        assert!(Level::available().contains(&Level::Portable));
        assert_eq!(*Level::available().last().unwrap(), Level::detected());
    }
}
