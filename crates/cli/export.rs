//! `mnist export`: a checkpoint in another tool's format.

use std::process::ExitCode;

use anyhow::{Context, Result};
use candle_core::Device;

use crate::cli::{ExportArgs, ExportFormat};

pub fn run(args: ExportArgs) -> Result<ExitCode> {
    // Export reads weights only; the CPU is always there and exact.
    let loaded = args.weights.load(&Device::Cpu)?;
    let bytes = match args.format {
        ExportFormat::Onnx => mnist_export::onnx_bytes(&loaded.network, &loaded.meta)
            .with_context(|| format!("exporting {}", loaded.source.display()))?,
    };
    mnist_data::fs::write_atomic(&args.out, &bytes)
        .with_context(|| format!("{}: cannot write the exported model", args.out.display()))?;
    eprintln!(
        "exported {} ({}) to {} ({} bytes, ONNX opset {}: input \"{}\" [batch, 1, 28, 28] 0-1, output \"{}\" [batch, 10])",
        loaded.source.display(),
        loaded.network.architecture,
        args.out.display(),
        bytes.len(),
        mnist_export::OPSET,
        mnist_export::INPUT_NAME,
        mnist_export::OUTPUT_NAME,
    );
    Ok(ExitCode::SUCCESS)
}
