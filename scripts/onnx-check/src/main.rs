//! Runs an ONNX model in candle-onnx on a reference file's `images` and compares with its
//! `logits` (see scripts/check_export.py): exit 1 when any logit differs by more than 1e-4 or
//! any predicted digit differs.
//!
//! onnx-check MODEL.onnx REFERENCE.safetensors

use std::collections::HashMap;

use candle_core::{Device, Tensor, D};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, reference] = &args[..] else {
        return Err("usage: onnx-check MODEL.onnx REFERENCE.safetensors".into());
    };
    let model = candle_onnx::read_file(model)?;
    let reference = candle_core::safetensors::load(reference, &Device::Cpu)?;
    let inputs = HashMap::from([("pixels".to_string(), reference["images"].clone())]);
    let outputs = candle_onnx::simple_eval(&model, inputs)?;
    let logits: &Tensor = &outputs["logits"];
    let expected = &reference["logits"];
    let diff = (logits - expected)?.abs()?.max_all()?.to_scalar::<f32>()?;
    let same = logits
        .argmax(D::Minus1)?
        .eq(&expected.argmax(D::Minus1)?)?
        .to_dtype(candle_core::DType::U32)?
        .sum_all()?
        .to_scalar::<u32>()?;
    let n = expected.dim(0)?;
    println!("candle-onnx 0.11.1: max |logit difference| {diff:.2e} over {n} images, {same}/{n} same digits");
    if diff > 1e-4 || same as usize != n {
        std::process::exit(1);
    }
    Ok(())
}
