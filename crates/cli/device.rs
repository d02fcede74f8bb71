//! The one place a device is chosen. Libraries take a `&Device`; only this module knows which
//! backends the build has (the `cuda` and `metal` cargo features).

use std::str::FromStr;

use anyhow::{bail, Context, Result};
use candle_core::Device;

/// `--device`: auto, cpu, cuda, cuda:N or metal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda(usize),
    Metal,
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            "metal" => Ok(Self::Metal),
            _ => match s.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(n)) => Ok(Self::Cuda(n)),
                _ => Err(format!(
                    "unknown device {s:?}; expected auto, cpu, cuda, cuda:N or metal"
                )),
            },
        }
    }
}

/// Opens the chosen device and says which one it is, for the log line.
pub fn open(choice: DeviceChoice) -> Result<(Device, String)> {
    match choice {
        DeviceChoice::Cpu => Ok((Device::Cpu, cpu_description())),
        DeviceChoice::Cuda(n) => {
            if !cfg!(feature = "cuda") {
                bail!("--device cuda: this build has no CUDA support; rebuild with `cargo build --release --features cuda` (or `cudnn`)");
            }
            let device = Device::new_cuda(n)
                .with_context(|| format!("--device cuda:{n}: cannot open the GPU"))?;
            Ok((device, format!("cuda:{n}")))
        }
        DeviceChoice::Metal => {
            if !cfg!(feature = "metal") {
                bail!("--device metal: this build has no Metal support; rebuild with `cargo build --release --features metal` (macOS)");
            }
            // Device::new_metal panics when no Metal device exists; keep that behind a catch so
            // the user gets a line, not a backtrace.
            let device = std::panic::catch_unwind(|| Device::new_metal(0))
                .map_err(|_| anyhow::anyhow!("--device metal: no Metal device found"))?
                .context("--device metal: cannot open the GPU")?;
            Ok((device, "metal:0".into()))
        }
        DeviceChoice::Auto => {
            if cfg!(feature = "cuda") {
                if let Ok(device) = Device::new_cuda(0) {
                    return Ok((device, "cuda:0 (auto)".into()));
                }
            }
            if cfg!(feature = "metal") {
                if let Ok(Ok(device)) = std::panic::catch_unwind(|| Device::new_metal(0)) {
                    return Ok((device, "metal:0 (auto)".into()));
                }
            }
            Ok((
                Device::Cpu,
                format!("{} (auto: no GPU backend available)", cpu_description()),
            ))
        }
    }
}

fn cpu_description() -> String {
    match candle_core::utils::get_num_threads() {
        1 => "cpu (1 thread)".to_string(),
        n => format!("cpu ({n} threads)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling() {
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:2".parse(), Ok(DeviceChoice::Cuda(2)));
        assert_eq!("metal".parse(), Ok(DeviceChoice::Metal));
        assert!("gpu"
            .parse::<DeviceChoice>()
            .unwrap_err()
            .contains("cuda:N"));
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn asking_for_a_missing_backend_names_the_feature() {
        let err = open(DeviceChoice::Cuda(0)).unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }

    #[test]
    fn cpu_always_opens() {
        assert!(open(DeviceChoice::Cpu).unwrap().0.is_cpu());
    }
}
