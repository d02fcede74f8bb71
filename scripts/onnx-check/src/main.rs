//! Runs an ONNX model in candle-onnx on a reference file's `images` and compares with its
//! `logits`: exit 1 when any logit differs by more than 1e-4 (a NaN counts as more) or any
//! predicted digit differs.
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
    if logits.dims() != expected.dims() {
        return Err(format!(
            "logits of shape {:?}, expected {:?}",
            logits.dims(),
            expected.dims()
        )
        .into());
    }
    // Element by element, so that a NaN counts as the largest difference: candle's max_all, and
    // a plain `diff > 1e-4`, would let it pass.
    let (ours, theirs) = (
        logits.flatten_all()?.to_vec1::<f32>()?,
        expected.flatten_all()?.to_vec1::<f32>()?,
    );
    let diff = ours.iter().zip(&theirs).fold(0f32, |m, (a, b)| {
        let d = (a - b).abs();
        if d.is_nan() || m.is_nan() {
            f32::NAN
        } else {
            m.max(d)
        }
    });
    let same = logits
        .argmax(D::Minus1)?
        .eq(&expected.argmax(D::Minus1)?)?
        .to_dtype(candle_core::DType::U32)?
        .sum_all()?
        .to_scalar::<u32>()?;
    let n = expected.dim(0)?;
    println!("candle-onnx 0.11.1: max |logit difference| {diff:.2e} over {n} images, {same}/{n} same digits");
    if !(diff <= 1e-4) || same as usize != n {
        std::process::exit(1);
    }
    Ok(())
}
