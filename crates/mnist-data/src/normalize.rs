//! Pixel normalization, defined once and used by training, evaluation and prediction alike.
//! Checkpoints record which one a model was trained with.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

/// How raw 0-255 pixels become model input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Normalization {
    /// `x / 255`, as the Keras tutorial does.
    Unit,
    /// `(x / 255 - mean) / std`, PyTorch's usual MNIST transform.
    MeanStd { mean: f32, std: f32 },
}

impl Normalization {
    /// The mean and standard deviation of MNIST's training pixels scaled to [0, 1].
    pub const MNIST_MEAN: f32 = 0.1307;
    pub const MNIST_STD: f32 = 0.3081;

    pub fn mnist_mean_std() -> Self {
        Self::MeanStd {
            mean: Self::MNIST_MEAN,
            std: Self::MNIST_STD,
        }
    }

    /// `(scale, offset)` such that `normalized = pixel * scale + offset` for a 0-255 pixel.
    pub fn affine(&self) -> (f64, f64) {
        match *self {
            Self::Unit => (1.0 / 255.0, 0.0),
            Self::MeanStd { mean, std } => {
                let (mean, std) = (mean as f64, std as f64);
                (1.0 / (255.0 * std), -mean / std)
            }
        }
    }

    /// Normalizes a tensor of 0-255 pixels (any dtype, any shape) into f32, in one fused op.
    pub fn apply(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let (scale, offset) = self.affine();
        pixels.to_dtype(DType::F32)?.affine(scale, offset)
    }

    /// The same transform on one host pixel, to the bit (candle's affine on f32 multiplies by
    /// `scale as f32` and adds `offset as f32`); used where images are prepared without a tensor
    /// (the CPU backend's input).
    pub fn apply_pixel(&self, pixel: u8) -> f32 {
        let (scale, offset) = self.affine();
        pixel as f32 * scale as f32 + offset as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn unit_maps_0_255_to_0_1() {
        let t = Tensor::new(&[0u8, 51, 255], &Device::Cpu).unwrap();
        let v = Normalization::Unit
            .apply(&t)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        // One multiply by 1/255 (not a divide), so 51/255 may be off by an ulp.
        for (a, b) in v.iter().zip([0.0, 0.2, 1.0]) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn mean_std_matches_the_pytorch_transform() {
        let n = Normalization::mnist_mean_std();
        let t = Tensor::new(&[0u8, 255], &Device::Cpu).unwrap();
        let v = n.apply(&t).unwrap().to_vec1::<f32>().unwrap();
        // torchvision: Normalize((0.1307,), (0.3081,)) after ToTensor().
        let expect = [(0.0 - 0.1307) / 0.3081, (1.0 - 0.1307) / 0.3081];
        for (a, b) in v.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        assert!((n.apply_pixel(255) - expect[1]).abs() < 1e-6);
    }

    /// A pixel normalized on the host is the bit pattern the tensor op gives, for every pixel.
    #[test]
    fn apply_pixel_gives_the_bits_of_apply() {
        let all: Vec<u8> = (0..=255).collect();
        let t = Tensor::new(all.as_slice(), &Device::Cpu).unwrap();
        for n in [Normalization::Unit, Normalization::mnist_mean_std()] {
            let v = n.apply(&t).unwrap().to_vec1::<f32>().unwrap();
            for (p, x) in all.iter().zip(v) {
                assert_eq!(n.apply_pixel(*p).to_bits(), x.to_bits(), "{n:?} pixel {p}");
            }
        }
    }

    #[test]
    fn serializes_with_its_parameters() {
        let json = serde_json::to_string(&Normalization::mnist_mean_std()).unwrap();
        assert_eq!(json, r#"{"kind":"mean_std","mean":0.1307,"std":0.3081}"#);
        let back: Normalization = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Normalization::mnist_mean_std());
    }
}
