//! The checkpoint loader on arbitrary bytes: safetensors header and offsets, our metadata, and
//! every tensor's name, shape, dtype and values against every shipped network.
#![no_main]

use std::path::Path;

use candle_core::Device;
use libfuzzer_sys::fuzz_target;
use mnist_model::{Architecture, Checkpoint};

fuzz_target!(|data: &[u8]| {
    let Ok(checkpoint) = Checkpoint::from_bytes(data, Path::new("fuzz-input")) else {
        return;
    };
    let _ = checkpoint.to_network(None, &Device::Cpu);
    for (name, _) in mnist_model::BUILT_IN {
        let architecture: Architecture = name.parse().unwrap();
        let _ = checkpoint.to_network(Some(architecture), &Device::Cpu);
    }
    let _ = checkpoint.optimizer_state();
});
