//! A split kept resident on the training device, and seeded batch orders over it.
//!
//! The images stay as u8 on the device (47 MB for the training set, a quarter of f32) and are
//! gathered and normalized there batch by batch, so a GPU is never starved by per-step host
//! copies: the only upload per epoch is the shuffled index order (240 KB).

use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;

use crate::rng::{seeded_rng, RngPurpose};
use crate::{Normalization, IMAGE_SIDE};

/// Images `[n, 1, 28, 28]` u8 and labels `[n]` u32 on one device.
#[derive(Debug, Clone)]
pub struct DeviceSplit {
    images: Tensor,
    labels: Tensor,
    len: usize,
}

/// One batch ready for the model.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[b, 1, 28, 28]` f32, normalized.
    pub images: Tensor,
    /// `[b]` u32.
    pub labels: Tensor,
}

impl DeviceSplit {
    /// Puts `pixels` (`n * 784` bytes) and `labels` (`n` bytes) on `device`. The pixels are
    /// taken by value: on the CPU the tensor adopts the buffer instead of copying it, which keeps
    /// a second 47 MB copy of the training set out of the process (the allocator holds on to
    /// freed pages, so a copy would have stayed in the peak RSS for the whole run).
    pub fn new(pixels: Vec<u8>, labels: &[u8], device: &Device) -> candle_core::Result<Self> {
        let len = labels.len();
        if pixels.len() != len * IMAGE_SIDE * IMAGE_SIDE {
            candle_core::bail!("{} pixels for {len} labels", pixels.len())
        }
        let images = Tensor::from_vec(pixels, (len, 1, IMAGE_SIDE, IMAGE_SIDE), device)?;
        let labels = Tensor::from_slice(labels, len, device)?.to_dtype(DType::U32)?;
        Ok(Self {
            images,
            labels,
            len,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn device(&self) -> &Device {
        self.images.device()
    }

    /// Images `[n, 1, 28, 28]` u8, in stored order.
    pub fn images(&self) -> &Tensor {
        &self.images
    }

    /// Labels `[n]` u32, in stored order.
    pub fn labels(&self) -> &Tensor {
        &self.labels
    }

    /// Runs `f` on the split's pixels (`n * 784` u8) and labels (`n` u32) in place, without a
    /// copy, when the split lives on the CPU; `None` on other devices.
    pub fn with_host_data<R>(&self, f: impl FnOnce(&[u8], &[u32]) -> R) -> Option<R> {
        use candle_core::{CpuStorage, Storage};
        let (images, images_layout) = self.images.storage_and_layout();
        let (labels, labels_layout) = self.labels.storage_and_layout();
        match (&*images, &*labels) {
            (Storage::Cpu(CpuStorage::U8(pixels)), Storage::Cpu(CpuStorage::U32(labels))) => {
                let (p0, p1) = images_layout.contiguous_offsets()?;
                let (l0, l1) = labels_layout.contiguous_offsets()?;
                Some(f(&pixels[p0..p1], &labels[l0..l1]))
            }
            _ => None,
        }
    }

    /// Consecutive images `start..start+len`: evaluation batches, no gather needed.
    pub fn slice(
        &self,
        start: usize,
        len: usize,
        norm: &Normalization,
    ) -> candle_core::Result<Batch> {
        Ok(Batch {
            images: norm.apply(&self.images.narrow(0, start, len)?)?,
            labels: self.labels.narrow(0, start, len)?,
        })
    }

    /// The images at `indices` (`[b]` u32 on this split's device).
    pub fn gather(&self, indices: &Tensor, norm: &Normalization) -> candle_core::Result<Batch> {
        Ok(Batch {
            images: norm.apply(&self.images.index_select(indices, 0)?)?,
            labels: self.labels.index_select(indices, 0)?,
        })
    }
}

/// A seeded permutation of `0..n` for `epoch`: the same seed and epoch give the same order on
/// every run, which is what makes a resumed run match an uninterrupted one.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(&mut seeded_rng(seed, RngPurpose::Shuffle, epoch));
    order
}

/// Batch boundaries `(start, len)` covering `0..n`; the last batch may be short, as in Keras.
pub fn batch_ranges(n: usize, batch_size: usize) -> impl Iterator<Item = (usize, usize)> {
    let batch_size = batch_size.max(1);
    (0..n)
        .step_by(batch_size)
        .map(move |start| (start, batch_size.min(n - start)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_data_is_the_uploaded_buffer_itself() {
        let pixels: Vec<u8> = (0..2 * 784).map(|i| (i % 251) as u8).collect();
        let kept = pixels.clone();
        let buffer = pixels.as_ptr();
        let split = DeviceSplit::new(pixels, &[3, 9], &Device::Cpu).unwrap();
        let (p, l, adopted) = split
            .with_host_data(|p, l| (p.to_vec(), l.to_vec(), p.as_ptr() == buffer))
            .unwrap();
        assert_eq!(p, kept);
        assert!(
            adopted,
            "the CPU tensor copied the pixels instead of adopting the buffer"
        );
        assert_eq!(l, vec![3, 9]);
    }

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let a = epoch_order(1000, 42, 0);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
        assert_eq!(a, epoch_order(1000, 42, 0));
        assert_ne!(a, epoch_order(1000, 42, 1));
        assert_ne!(a, epoch_order(1000, 43, 0));
    }

    #[test]
    fn batch_ranges_cover_everything_once_with_a_short_tail() {
        let ranges: Vec<_> = batch_ranges(10, 4).collect();
        assert_eq!(ranges, vec![(0, 4), (4, 4), (8, 2)]);
        assert_eq!(batch_ranges(60_000, 32).count(), 1875);
    }

    #[test]
    fn gather_and_slice_return_normalized_images_with_their_labels() {
        let pixels: Vec<u8> = (0..3).flat_map(|i| vec![i as u8 * 100; 784]).collect();
        let split = DeviceSplit::new(pixels, &[7, 8, 9], &Device::Cpu).unwrap();
        let idx = Tensor::new(&[2u32, 0], &Device::Cpu).unwrap();
        let batch = split.gather(&idx, &Normalization::Unit).unwrap();
        assert_eq!(batch.images.dims(), &[2, 1, 28, 28]);
        assert_eq!(batch.labels.to_vec1::<u32>().unwrap(), vec![9, 7]);
        let first: Vec<f32> = batch.images.flatten_all().unwrap().to_vec1().unwrap();
        assert!((first[0] - 200.0 / 255.0).abs() < 1e-6 && first[784] == 0.0);
        let tail = split.slice(1, 2, &Normalization::Unit).unwrap();
        assert_eq!(tail.labels.to_vec1::<u32>().unwrap(), vec![8, 9]);
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        assert!(DeviceSplit::new(vec![0u8; 784], &[1, 2], &Device::Cpu).is_err());
    }
}
